"""``credit.line.granted`` in accounts: runs of every length leave the same state.

The same wire bodies go into fresh accounts databases, on PostgreSQL and on SQLite, all
through the registered handlers: once one event per transaction (a batch of one is the
per-event path), then in one batch, in batches of three and in one batch with a poison
event (the guarded retry pass). Every row of the accounts service and every event
written to its outbox, with its causation and correlation ids, must be the same
(``tests/support/batch_equivalence.py``), and as the scenario says.

The poison pass rolls back lines the optimistic pass had inserted, and PostgreSQL does
not give their sequence values back: there the lines' surrogate ``pk`` differs, so the
state is compared with each ``account_pk`` read as the line's ``account_id``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from services.accounts.grants import credit_line_granted_batch
from services.accounts.registry import HANDLERS
from services.accounts.models import Account
from shared.bus.handling import BatchHandler
from shared.clock import SHANGHAI
from tests.support.batch_equivalence import Databases, Event, Poison, Service, State, bodies, databases_fixture

pytestmark = pytest.mark.integration

ACCOUNTS = Service("accounts")
databases = databases_fixture("accounts")
START = datetime(2026, 1, 5, 10, 0, tzinfo=SHANGHAI)


def test_registered_handler_is_the_batch_one() -> None:
    handler = HANDLERS["credit.line.granted"]
    assert isinstance(handler, BatchHandler) and handler.fn is credit_line_granted_batch


# --- scenario ---------------------------------------------------------------------------------


def _grant(account: str, identity: str, limit: str = "5000.00", income: str | None = None) -> Event:
    payload = {
        "account_id": account,
        "customer_id": f"c-{account}",
        "identity_hash": f"identity-{identity}",
        "credit_limit": limit,
        "name": "张三",
        "phone": "13800005678",
        "opened_on": "2026-01-05",
    }
    if income is not None:
        payload["monthly_income"] = income
    return "credit.line.granted", payload


def _buy(account: str, purchase_id: str) -> Event:
    return "purchase.requested", {
        "purchase_id": purchase_id,
        "account_id": account,
        "amount": "10.00",
        "merchant": "jd-mall",
        "requested_at": "2026-01-05T10:00:00+08:00",
    }


def _setup() -> list[Event]:
    return [_grant("S1", "frozen"), _grant("S2", "frozen"), _grant("L1", "suspended"), _grant("C1", "clean")]


def _standing(engine: Engine) -> None:
    """The identities' stored lines on the ladder (set directly: the close is not what is tested)."""
    with engine.begin() as conn:
        for account_id, values in (
            ("S1", {"level": 4}),
            ("S2", {"level": 1}),
            ("L1", {"level": 3, "status": "closed"}),
        ):
            conn.execute(update(Account.__table__).where(Account.__table__.c.account_id == account_id).values(**values))


def _night() -> list[Event]:
    return [
        _grant("N1", "frozen"),  # the identity's highest stored level: 4
        _grant("F1", "fresh"),
        _grant("F2", "fresh", income="8000.00"),  # a second new line of a new identity: F1 starts at 0
        _grant("N2", "frozen", limit="300.00", income="12000.50"),
        _grant("S1", "clean", limit="1.00"),  # stored before: nothing changes, its first answer again
        _grant("N1", "clean", limit="2.00"),  # earlier in the run: nothing changes, its first answer again
        _grant("L2", "suspended"),  # a closed line's level counts too: 3
        _grant("C2", "clean"),
        _buy("N1", "n1-1"),  # declined: linked restriction (a line the run before opened)
        _buy("F1", "f1-1"),  # approved: the run before opened it
        _grant("N3", "frozen"),
        _grant("F1", "fresh", limit="3.00"),  # opened by an earlier run of the same batch: its first answer
        _grant("F3", "fresh"),
    ]


def _by_account_id(found: State) -> State:
    """``found`` with the lines' surrogate keys replaced by their account ids."""
    ids = {a["pk"]: a["account_id"] for a in found["accounts"]}
    return {
        table: [
            {k: (ids[v] if k == "account_pk" else v) for k, v in row.items() if k != "pk" or table != "accounts"}
            for row in table_rows
        ]
        for table, table_rows in found.items()
    }


# --- tests ------------------------------------------------------------------------------------


def test_batches_give_the_same_lines_and_replies_as_one_by_one(databases: Databases) -> None:
    setup, night = bodies(_setup(), START - timedelta(days=1)), bodies(_night(), START)
    expected = ACCOUNTS.assert_batches_agree(
        lambda: ACCOUNTS.prepared(databases, HANDLERS, setup, _standing),
        "credit.line.granted",
        night,
        one_batch=[8, 3],  # grants | two purchases | grants
        poison=Poison.plan_completed(5, "S1", START),
        guarded=[5] + [1] * 11,
        guarded_view=_by_account_id,
    )  # PostgreSQL's sequence may skip the lines' pk: see above
    _what_the_scenario_says(expected, night)


def _what_the_scenario_says(found: dict[str, Any], night: list[bytes]) -> None:
    """So that "equal" cannot mean "equally empty" (nor equally wrong)."""
    lines = {a["account_id"]: a for a in found["accounts"]}
    assert [a["account_id"] for a in found["accounts"]] == [
        "S1",
        "S2",
        "L1",
        "C1",
        "N1",
        "F1",
        "F2",
        "N2",
        "L2",
        "C2",
        "N3",
        "F3",
    ]  # opened in message order
    assert {a: lines[a]["linked_level"] for a in lines if a not in ("S1", "S2", "L1", "C1")} == {
        "N1": 4,
        "F1": 0,
        "F2": 0,
        "N2": 4,
        "L2": 3,
        "C2": 0,
        "N3": 4,
        "F3": 0,
    }
    assert (lines["S1"]["credit_limit_fen"], lines["S1"]["identity_hash"]) == (500_000, "identity-frozen")
    assert (lines["N1"]["credit_limit_fen"], lines["N1"]["identity_hash"]) == (500_000, "identity-frozen")
    assert lines["F1"]["credit_limit_fen"] == 500_000 and lines["F1"]["unpaid_principal_fen"] == 1_000
    assert (lines["N2"]["granted_limit_fen"], lines["N2"]["monthly_income_fen"]) == (30_000, 1_200_050)
    assert lines["F2"]["monthly_income_fen"] == 800_000 and lines["F3"]["monthly_income_fen"] is None
    replies = [e for e in found["outbox"] if e["type"] == "purchase.approved" or e["type"] == "purchase.declined"]
    assert [(e["type"], e["payload"].get("reason")) for e in replies] == [
        ("purchase.declined", "linked_account_restricted"),
        ("purchase.approved", None),
    ]
    # one reply per grant, in order, caused by it and in its conversation; a repeated grant
    # gets the line's first answer (the limit granted then, not the one it asks for)
    opened = [e for e in found["outbox"] if e["type"] == "credit.line.opened"][4:]  # after the setup's
    grants = [json.loads(b) for b in night if json.loads(b)["type"] == "credit.line.granted"]
    assert [e["aggregate_id"] for e in opened] == ["N1", "F1", "F2", "N2", "S1", "N1", "L2", "C2", "N3", "F1", "F3"]
    assert [(e["causation_id"], e["correlation_id"]) for e in opened] == [
        (g["event_id"], g["correlation_id"]) for g in grants
    ]
    assert any(e["correlation_id"] != e["causation_id"] for e in opened)
    assert opened[3]["payload"] == {"account_id": "N2", "credit_limit": "300.00", "opened_on": "2026-01-05"}
    assert opened[5]["payload"] == opened[0]["payload"] and opened[9]["payload"] == opened[1]["payload"]
    assert opened[4]["payload"]["credit_limit"] == "5000.00"  # S1 as granted in the setup, not 1.00


def test_a_run_costs_a_fixed_number_of_statements(databases: Databases) -> None:
    """Set-based: a run of 60 grants runs the statements a run of 6 does."""
    engine = ACCOUNTS.prepared(
        databases, HANDLERS, bodies([_grant(f"S{k}", f"i{k % 3}") for k in range(6)], START - timedelta(days=1))
    )

    def night(n: int, prefix: str) -> list[bytes]:
        grants = [_grant(f"{prefix}-{k}", f"i{k % 5}") for k in range(n)]
        return bodies(grants + [_grant("S0", "i0"), _grant(f"{prefix}-0", "i9")], START)

    small, large = (
        ACCOUNTS.statements(engine, HANDLERS, night(n, prefix)) for n, prefix in ((6, "small"), (60, "large"))
    )
    assert len(small) == len(large), large
    assert len([s for s in large if "FROM accounts" in s]) == 1
    assert len([s for s in large if s.startswith("INSERT INTO accounts")]) == 1
    assert len([s for s in large if s.startswith("INSERT INTO outbox")]) == 1
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Account.__table__)) == 72
