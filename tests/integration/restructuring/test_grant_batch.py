"""``credit.line.granted`` in restructuring: runs of every length leave the same state.

The same wire bodies go into fresh restructuring databases, on PostgreSQL and on SQLite,
once one event per transaction, then in one batch, in batches of three and in one batch
with a poison event (the guarded retry pass, runs of one), all through the registered
handlers: a batch of one is the per-event path, so every length of run must leave the
same rows and outbox: the ``risk.assessed`` of a line whose bill goes overdue
right after its grant shows that handlers later in the same transaction read the opening
date and income the run wrote (``tests/support/batch_equivalence.py``). Beside the equivalence, the
scenario's own assertions say what those rows are.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from services.restructuring.grants import credit_line_granted_batch
from services.restructuring.registry import HANDLERS
from services.restructuring.models import AccountView
from shared.bus.handling import BatchHandler
from shared.clock import SHANGHAI
from shared.db import transaction
from tests.support.batch_equivalence import Databases, Event, Poison, Service, bodies, databases_fixture

pytestmark = pytest.mark.integration

RESTRUCTURING = Service("restructuring")
databases = databases_fixture("restructuring")
START = datetime(2026, 3, 11, 9, 0, tzinfo=SHANGHAI)


def test_registered_handler_is_the_batch_one() -> None:
    handler = HANDLERS["credit.line.granted"]
    assert isinstance(handler, BatchHandler) and handler.fn is credit_line_granted_batch


# --- scenario ---------------------------------------------------------------------------------


def _grant(account: str, opened_on: str, income: str | None = None) -> Event:
    payload: dict[str, Any] = {
        "account_id": account,
        "customer_id": f"c-{account}",
        "identity_hash": "h" * 16,
        "credit_limit": "5000.00",
        "name": "张三",
        "phone": "13800005678",
        "opened_on": opened_on,
    }
    if income is not None:
        payload["monthly_income"] = income
    return "credit.line.granted", payload


def _bill(account: str) -> Event:
    return "bill.issued", {
        "bill_id": f"{account}-b1",
        "account_id": account,
        "statement_date": "2026-02-20",
        "due_date": "2026-03-10",
        "amount": "1000.00",
    }


def _overdue(account: str) -> Event:
    return "bill.overdue", {
        "bill_id": f"{account}-b1",
        "account_id": account,
        "due_date": "2026-03-10",
        "business_date": "2026-03-11",
        "dpd": 1,
        "unpaid_principal": "1000.00",
    }


def _snapshot(account: str) -> Event:
    return "account.delinquency.updated", {
        "account_id": account,
        "business_date": "2026-03-11",
        "max_dpd": 1,
        "overdue_principal": "500.00",
        "penalty_interest": "0.00",
        "late_fees": "0.00",
        "total_overdue": "500.00",
        "bills": [
            {
                "bill_id": f"{account}-b1",
                "due_date": "2026-03-10",
                "dpd": 1,
                "unpaid_principal": "500.00",
                "penalty_interest": "0.00",
                "late_fee": "0.00",
            }
        ],
    }


def _setup() -> list[Event]:
    return [_grant("R1", "2023-01-01", "20000.00"), _bill("R2"), _grant("R3", "2024-06-01")]


def _night() -> list[Event]:
    return [
        _grant("N1", "2025-01-01", "9000.00"),
        _grant("N1", "2020-01-01", "1.00"),  # again in the run: both known already, nothing changes
        _grant("R1", "2020-01-01", "1.00"),  # stored: nothing changes
        _grant("R2", "2022-02-01", "15000.00"),  # a row a bill created first: both filled in
        _grant("R3", "2020-01-01", "7000.00"),  # the income only: the opening date is known
        _grant("N4", "2024-03-01"),
        _grant("N4", "2019-01-01", "5000.00"),  # the income the first grant of the run did not have
        _bill("N2"),  # a per-event handler creates the row (and may hold it) ...
        _grant("N2", "2021-01-01", "30000.00"),  # ... the run fills it in ...
        _overdue("N2"),  # ... and the assessment reads what the run wrote
        _snapshot("N3"),  # a batch handler's run creates the row
        _grant("N3", "2024-01-01"),
        _grant("N5", "2025-06-01", "0.00"),
    ]


# --- tests ------------------------------------------------------------------------------------


def _prepared(databases: Databases, setup: list[Event]) -> Engine:
    return RESTRUCTURING.prepared(databases, HANDLERS, bodies(setup, START - timedelta(days=1)))


def test_batches_give_the_same_projection_and_events_as_one_by_one(databases: Databases) -> None:
    # every pass keeps its objects alive: the row bill.issued loaded stays in the session, it must be reloaded
    expected = RESTRUCTURING.assert_batches_agree(
        lambda: _prepared(databases, _setup()),
        "credit.line.granted",
        bodies(_night(), START),
        one_batch=[7, 1, 2],  # grants | a bill | N2 | overdue, snapshot | grants
        poison=Poison(4, ("account.cured", {"account_id": "R1", "business_date": "2026-03-11"}), START),
        guarded=[4] + [1] * 10,
    )

    # what the scenario says, so that "equal" cannot mean "equally empty"
    views = {a["account_id"]: (str(a["opened_on"]), a["monthly_income_fen"]) for a in expected["account_views"]}
    assert views == {
        "R1": ("2023-01-01", 2_000_000),
        "R2": ("2022-02-01", 1_500_000),
        "R3": ("2024-06-01", 700_000),
        "N1": ("2025-01-01", 900_000),
        "N4": ("2024-03-01", 500_000),
        "N2": ("2021-01-01", 3_000_000),
        "N3": ("2024-01-01", None),
        "N5": ("2025-06-01", 0),
    }
    assert [e["aggregate_id"] for e in expected["outbox"] if e["type"] == "risk.assessed"] == ["N2", "N3"]
    (assessment,) = [a for a in expected["risk_assessments"] if a["account_id"] == "N2"]
    assert assessment["months_on_book"] > 60 and assessment["monthly_income_fen"] == 3_000_000


def test_a_run_costs_a_fixed_number_of_statements(databases: Databases) -> None:
    """Set-based: a run of 60 grants runs the statements a run of 6 does."""
    engine = _prepared(databases, [_grant("R0", "2023-01-01")])

    def night(n: int, prefix: str) -> list[bytes]:
        grants = [_grant(f"{prefix}-{k}", "2025-01-01", f"{k}.00" if k % 2 else None) for k in range(n)]
        return bodies(
            grants + [_grant("R0", "2020-01-01", "8000.00"), _grant(f"{prefix}-0", "2020-01-01", "9000.00")], START
        )

    small, large = (
        RESTRUCTURING.statements(engine, HANDLERS, night(n, prefix)) for n, prefix in ((6, "small"), (60, "large"))
    )
    assert len(small) == len(large), large
    assert len([s for s in large if "account_views" in s]) == 2  # one read, one upsert
    views = {a["account_id"]: a for a in RESTRUCTURING.state(engine)["account_views"]}
    assert len(views) == 67 and views["R0"]["monthly_income_fen"] == 800_000
    assert views["large-0"]["monthly_income_fen"] == 900_000 and str(views["large-0"]["opened_on"]) == "2025-01-01"


def test_a_row_already_in_the_session_sees_what_the_run_wrote(databases: Databases) -> None:
    engine = _prepared(databases, [_bill("R2")])
    with transaction(engine) as session:
        held = session.get(AccountView, "R2")
        assert held is not None and held.opened_on is None
        run = RESTRUCTURING.handler_run(session, bodies([_grant("R2", "2022-02-01", "15000.00")], START))
        credit_line_granted_batch(run)
        assert (str(held.opened_on), held.monthly_income_fen) == ("2022-02-01", 1_500_000)
