"""``bill.issued`` in restructuring: runs of every length leave the same state.

The same wire bodies go into fresh restructuring databases, on PostgreSQL and on SQLite,
once one event per transaction, then in one batch, in batches of three and in one batch
with a poison event (the guarded retry pass, runs of one), all through the registered
handlers: a batch of one is the per-event path, so every length of run must leave the
same rows and outbox (``tests/support/batch_equivalence.py``). Beside the equivalence, the
scenario's own assertions say what those rows are.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine

from services.restructuring.bills import bill_issued_batch
from services.restructuring.registry import HANDLERS
from services.restructuring.models import BillView
from shared.bus.handling import BatchHandler
from shared.clock import SHANGHAI
from shared.db import transaction
from tests.support.batch_equivalence import Databases, Event, Poison, Service, bodies, databases_fixture

pytestmark = pytest.mark.integration

RESTRUCTURING = Service("restructuring")
databases = databases_fixture("restructuring")
START = datetime(2026, 3, 20, 0, 10, tzinfo=SHANGHAI)


def test_registered_handler_is_the_batch_one() -> None:
    handler = HANDLERS["bill.issued"]
    assert isinstance(handler, BatchHandler) and handler.fn is bill_issued_batch


# --- scenario ---------------------------------------------------------------------------------


def _issued(account: str, bill: str, amount: str, due: str = "2026-04-09") -> Event:
    return "bill.issued", {
        "bill_id": bill,
        "account_id": account,
        "statement_date": "2026-03-20",
        "due_date": due,
        "amount": amount,
    }


def _grant(account: str) -> Event:
    return "credit.line.granted", {
        "account_id": account,
        "customer_id": f"c-{account}",
        "identity_hash": "h" * 16,
        "credit_limit": "5000.00",
        "name": "张三",
        "phone": "13800005678",
        "opened_on": "2024-01-01",
        "monthly_income": "9000.00",
    }


def _overdue(account: str, bill: str, unpaid: str) -> Event:
    return "bill.overdue", {
        "bill_id": bill,
        "account_id": account,
        "due_date": "2026-03-10",
        "business_date": "2026-03-11",
        "dpd": 1,
        "unpaid_principal": unpaid,
    }


def _repaid(account: str, bill: str, amount: str) -> Event:
    return "repayment.applied", {
        "payment_id": f"pay-{bill}",
        "account_id": account,
        "amount": amount,
        "credit_balance": "0.00",
        "allocations": [{"target": "bill", "target_id": bill, "component": "principal", "amount": amount}],
        "total_overdue": "0.00",
    }


def _setup() -> list[Event]:
    return [_grant("R1"), _overdue("R2", "R2-b0", "300.00")]


def _night() -> list[Event]:
    return [
        _issued("N1", "N1-b1", "1000.00"),  # a new account and bill: unpaid in full
        _issued("R1", "R1-b1", "2000.00"),  # an account a grant created
        _issued("R2", "R2-b0", "500.00", due="2026-03-10"),  # known from an overdue snapshot: unpaid as it said
        _issued("N1", "N1-b1", "1000.00"),  # again in the run: nothing changes
        _repaid("N1", "N1-b1", "400.00"),  # a per-event handler reads the bill the run wrote ...
        _issued("N1", "N1-b1", "1000.00"),  # ... and a late repeat keeps what it paid
        _overdue("N2", "N2-b0", "80.00"),  # a per-event handler creates a bill in the transaction ...
        _issued("N2", "N2-b0", "100.00", due="2026-03-10"),  # ... the run sees it
        _issued("N3", "N3-b1", "0.00"),
    ]


# --- tests ------------------------------------------------------------------------------------


def _prepared(databases: Databases, setup: list[Event]) -> Engine:
    return RESTRUCTURING.prepared(databases, HANDLERS, bodies(setup, START - timedelta(days=1)))


def test_batches_give_the_same_projection_and_events_as_one_by_one(databases: Databases) -> None:
    setup = bodies(_setup(), START - timedelta(days=1))  # once: every pass has the same event ids
    expected = RESTRUCTURING.assert_batches_agree(
        lambda: RESTRUCTURING.prepared(databases, HANDLERS, setup),
        "bill.issued",
        bodies(_night(), START),
        one_batch=[4, 1, 2],  # issued x4 | repaid | issued | overdue | issued x2
        poison=Poison(2, ("account.cured", {"account_id": "R1", "business_date": "2026-03-20"}), START),
        guarded=[2] + [1] * 7,
    )

    # what the scenario says, so that "equal" cannot mean "equally empty"
    bills = {
        b["bill_id"]: (b["account_id"], b["amount_fen"], b["unpaid_principal_fen"]) for b in expected["bill_views"]
    }
    assert bills == {
        "N1-b1": ("N1", 100_000, 60_000),
        "R1-b1": ("R1", 200_000, 200_000),
        "R2-b0": ("R2", 50_000, 30_000),
        "N2-b0": ("N2", 10_000, 8_000),
        "N3-b1": ("N3", 0, 0),
    }
    assert {a["account_id"] for a in expected["account_views"]} == {"R1", "R2", "N1", "N2", "N3"}
    (r1,) = [a for a in expected["account_views"] if a["account_id"] == "R1"]
    assert r1["monthly_income_fen"] == 900_000  # the grant's row, not replaced by the run


def test_a_run_costs_a_fixed_number_of_statements(databases: Databases) -> None:
    """Set-based: a run of 60 bills runs the statements a run of 6 does."""
    engine = _prepared(databases, [_grant("R0")])

    def night(n: int, prefix: str) -> list[bytes]:
        return bodies(
            [_issued(f"{prefix}-{k}", f"{prefix}-{k}-b", f"{k}.00") for k in range(n)]
            + [_issued("R0", f"{prefix}-R0-b", "9.00")],
            START,
        )

    small, large = (
        RESTRUCTURING.statements(engine, HANDLERS, night(n, prefix)) for n, prefix in ((6, "small"), (60, "large"))
    )
    assert len(small) == len(large), large
    assert len([s for s in large if "bill_views" in s]) == 2  # one read, one upsert
    assert len(RESTRUCTURING.state(engine)["bill_views"]) == 68


def test_a_bill_already_in_the_session_sees_what_the_run_wrote(databases: Databases) -> None:
    engine = _prepared(databases, [_overdue("R2", "R2-b0", "300.00")])
    with transaction(engine) as session:
        held = session.get(BillView, "R2-b0")
        assert held is not None and held.amount_fen is None
        bill_issued_batch(RESTRUCTURING.handler_run(session, bodies([_issued("R2", "R2-b0", "500.00")], START)))
        assert (held.amount_fen, held.unpaid_principal_fen) == (50_000, 30_000)
