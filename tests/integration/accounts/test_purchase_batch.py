"""``purchase.requested``: runs of every length leave the same state.

The same wire bodies go into fresh accounts databases, on PostgreSQL and on SQLite (the
embedded default), all through the registered handlers: once one event per transaction (a
batch of one is the per-event path), then in one batch, in batches of three and in one
batch with a poison event (the guarded retry pass, which calls the batch handler with
runs of one in savepoints), every ORM object kept alive. Every row of the accounts
service (accounts, purchases, ledger entries...) and every event written to the outbox,
with its causation and correlation ids, must be the same
(``tests/support/batch_equivalence.py``), and as the scenario says.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from services.accounts.registry import HANDLERS
from services.accounts.models import Account, Purchase
from services.accounts.purchases import purchase_requested_batch
from shared.bus.handling import BatchHandler
from shared.clock import SHANGHAI
from tests.support.batch_equivalence import Databases, Event, Poison, Service, bodies, databases_fixture

pytestmark = pytest.mark.integration

ACCOUNTS = Service("accounts")
databases = databases_fixture("accounts")
START = datetime(2026, 1, 5, 10, 0, tzinfo=SHANGHAI)
LONG_MERCHANT = "商户" * 64  # 128 characters, the most the contract takes (and the column keeps)


def test_registered_handler_is_the_batch_one() -> None:
    handler = HANDLERS["purchase.requested"]
    assert isinstance(handler, BatchHandler) and handler.fn is purchase_requested_batch


# --- scenario ---------------------------------------------------------------------------------


def _grant(account: str, limit: str = "5000.00", identity: str | None = None) -> Event:
    return "credit.line.granted", {
        "account_id": account,
        "customer_id": f"c-{account}",
        "identity_hash": identity or f"identity-{account}",
        "credit_limit": limit,
        "name": "张三",
        "phone": "13800005678",
        "opened_on": "2025-06-01",
    }


def _buy(
    account: str,
    purchase_id: str,
    amount: str,
    requested_at: str = "2026-01-05T10:00:00+08:00",
    merchant: str = "jd-mall",
) -> Event:
    return "purchase.requested", {
        "purchase_id": purchase_id,
        "account_id": account,
        "amount": amount,
        "merchant": merchant,
        "requested_at": requested_at,
    }


def _repay(account: str, payment_id: str, amount: str) -> Event:
    return "repayment.received", {
        "payment_id": payment_id,
        "account_id": account,
        "amount": amount,
        "currency": "CNY",
        "paid_at": "2026-01-05T12:00:00+08:00",
        "channel": "app",
    }


def _setup() -> list[Event]:
    return [
        _grant("A", "100.00"),
        _grant("B"),
        _grant("C"),
        _grant("D"),
        _grant("E"),
        _grant("G"),
        _grant("H", "200.00"),
        _buy("B", "p-old", "30.00"),  # stored before the night
    ]


def _standing(engine: Engine) -> None:
    """Accounts the ladder has reached (set directly: the close is not what is tested here)."""
    with engine.begin() as conn:
        for account_id, values in (
            ("C", {"level": 1}),
            ("D", {"status": "closed"}),
            ("E", {"linked_level": 3}),
            ("G", {"level": 3}),
            ("H", {"limit_cut": True, "credit_limit_fen": 10_000}),
        ):
            conn.execute(update(Account.__table__).where(Account.__table__.c.account_id == account_id).values(**values))


def _night() -> list[Event]:
    return [
        _buy("A", "a1", "40.00"),  # available 100 -> 60
        _buy("A", "a2", "50.00"),  # -> 10
        _buy("A", "a3", "20.00"),  # more than is left: insufficient_limit
        _buy("A", "a4", "10.00"),  # exactly what is left: -> 0
        _buy("A", "a5", "0.01"),  # exhausted: insufficient_limit
        _buy("X", "x1", "1.00"),  # unknown_account
        _buy("B", "p-old", "99.99"),  # answered before: its first answer again, 30.00, no second row
        _buy("B", "b1", "100.00", merchant=LONG_MERCHANT),
        _buy("B", "b1", "1.00"),  # again inside the run: its first answer again, 100.00
        _buy("B", "b2", "-5.00"),  # invalid_amount
        _buy("B", "b2", "5.00"),  # the same id once more, now valid: still its first answer, nothing recorded
        _buy("C", "c1", "1.00"),  # account_restricted
        _buy("D", "d1", "1.00"),  # account_closed
        _buy("E", "e1", "1.00"),  # linked_account_restricted
        _buy("G", "g1", "1.00"),  # restricted and frozen
        _buy("H", "h1", "100.00"),  # the cut limit: exactly 100 available
        _buy("H", "h2", "0.01"),
        _buy("A", "p-old", "1.00"),  # a known purchase id asked for another account: its first answer (B's)
        _buy("X", "p-old", "1.00"),  # ... and for an unknown account: the same
        _buy("B", "b3", "20.00", requested_at="2026-01-04T17:30:00Z"),  # 01:30 in Shanghai: posted on the 5th
        _buy("B", "b4", "20.00", requested_at="2026-01-04T23:59:00+08:00"),  # posted on the 4th
        _repay("A", "r1", "50.00"),  # a per-event handler between two runs reads the account the run changed
        _buy("A", "a6", "10.00"),  # a credit balance is not available limit: insufficient_limit
        _grant("F", "10.00"),  # granted between two runs: the next run finds it
        _buy("F", "f1", "10.00"),
        _buy("F", "f2", "10.00"),
        _buy("B", "b1", "7.00"),  # answered by an earlier run of the same batch: that answer again
    ]


# --- tests ------------------------------------------------------------------------------------


def test_batches_give_the_same_rows_and_replies_as_one_by_one(databases: Databases) -> None:
    setup, night = bodies(_setup(), START - timedelta(days=1)), bodies(_night(), START)
    expected = ACCOUNTS.assert_batches_agree(
        lambda: ACCOUNTS.prepared(databases, HANDLERS, setup, _standing),
        "purchase.requested",
        night,
        one_batch=[21, 1, 3],  # purchases | repayment | a6 | grant | f1 f2 b1
        poison=Poison.plan_completed(9, "A", START),
        guarded=[9] + [1] * 25,
    )
    _what_the_scenario_says(expected, setup + night)


def _what_the_scenario_says(found: dict[str, Any], wire: list[bytes]) -> None:
    """So that "equal" cannot mean "equally empty" (nor equally wrong)."""
    replies = [(e["type"], e["payload"]) for e in found["outbox"] if e["type"].startswith("purchase.")]
    said: dict[str, list[tuple[str, ...]]] = {}
    for event_type, payload in replies:
        said.setdefault(payload["purchase_id"], []).append(
            (
                event_type.split(".")[1],
                payload["account_id"],
                payload["amount"],
                payload.get("available_limit") or payload.get("reason"),
            )
        )
    # several purchases of one account in one run: the available limit goes down, then declines
    assert said["a1"] == [("approved", "A", "40.00", "60.00")]
    assert said["a2"] == [("approved", "A", "50.00", "10.00")]
    assert said["a3"] == [("declined", "A", "20.00", "insufficient_limit")]
    assert said["a4"] == [("approved", "A", "10.00", "0.00")]
    assert said["a5"] == [("declined", "A", "0.01", "insufficient_limit")]
    assert said["x1"] == [("declined", "X", "1.00", "unknown_account")]
    # purchase ids answered before, or earlier in the same run: the first answer again, word for word
    assert said["p-old"] == [("approved", "B", "30.00", "4970.00")] * 4
    assert said["b1"] == [("approved", "B", "100.00", "4870.00")] * 3
    assert said["a6"] == [("declined", "A", "10.00", "insufficient_limit")]
    assert said["b2"] == [("declined", "B", "-5.00", "invalid_amount")] * 2
    assert [s[3] for s in said["c1"] + said["d1"] + said["e1"] + said["g1"]] == [
        "account_restricted",
        "account_closed",
        "linked_account_restricted",
        "account_restricted",
    ]
    assert said["h1"] == [("approved", "H", "100.00", "0.00")] and said["h2"][0][3] == "insufficient_limit"
    assert said["f1"] == [("approved", "F", "10.00", "0.00")] and said["f2"][0][3] == "insufficient_limit"
    # one row per purchase, one posting per purchase
    purchases = {p["purchase_id"]: p for p in found["purchases"]}
    assert sorted(purchases) == ["a1", "a2", "a4", "b1", "b3", "b4", "f1", "h1", "p-old"]
    assert purchases["b1"]["amount_fen"] == 10_000 and purchases["b1"]["merchant"] == LONG_MERCHANT
    assert (str(purchases["b3"]["posted_on"]), str(purchases["b4"]["posted_on"])) == ("2026-01-05", "2026-01-04")
    postings = [e["posting_id"] for e in found["ledger_entries"] if e["kind"] == "purchase"]
    assert sorted(set(postings)) == sorted(f"purchase:{p}" for p in purchases)
    assert all(postings.count(p) == 2 for p in postings)  # a debit and a credit line each
    accounts = {a["account_id"]: a for a in found["accounts"]}
    assert {a: accounts[a]["unpaid_principal_fen"] for a in "ABFH"} == {
        "A": 10_000,
        "B": 17_000,
        "F": 1_000,
        "H": 10_000,
    }
    # one reply per request, in order, caused by that request and in its conversation
    requests = [json.loads(b) for b in wire if json.loads(b)["type"] == "purchase.requested"]
    replied = [e for e in found["outbox"] if e["type"].startswith("purchase.")]
    assert [(e["causation_id"], e["correlation_id"]) for e in replied] == [
        (r["event_id"], r["correlation_id"]) for r in requests
    ]
    assert any(r["correlation_id"] != r["event_id"] for r in requests)


def test_a_run_costs_a_fixed_number_of_statements(databases: Databases) -> None:
    """Set-based: a run of 60 requests runs the statements a run of 6 does, the accounts locked in pk order."""
    engine = ACCOUNTS.prepared(
        databases, HANDLERS, bodies([_grant(f"S{k}") for k in range(30)], START - timedelta(days=1))
    )

    def night(n: int, prefix: str) -> list[bytes]:
        purchases = [_buy(f"S{k % 30}", f"{prefix}-{k}", "1.00") for k in range(n)]
        return bodies(purchases + [_buy("S0", f"{prefix}-0", "1.00")], START)  # and the first id again

    small, large = (
        ACCOUNTS.statements(engine, HANDLERS, night(n, prefix)) for n, prefix in ((6, "small"), (60, "large"))
    )
    assert len(small) == len(large), large
    (locking,) = [s for s in large if "FROM accounts" in s]
    assert "ORDER BY accounts.pk" in locking
    if engine.dialect.name == "postgresql":
        assert locking.rstrip().endswith("FOR UPDATE")
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Purchase.__table__)) == 66
        assert conn.scalar(select(func.sum(Account.__table__.c.unpaid_principal_fen))) == 6_600
