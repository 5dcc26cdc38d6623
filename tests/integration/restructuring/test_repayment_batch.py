"""``repayment.applied`` and ``account.cured`` in restructuring: runs of every length
leave the same state.

The same wire bodies go into fresh restructuring databases, on PostgreSQL and on SQLite,
once one event per transaction, then in one batch, in batches of three and in one batch
with a poison event (the guarded retry pass, runs of one), all through the registered
handlers: a batch of one is the per-event path, so every length of run must leave the
same rows (bills, plans, installments, plan payments) and outbox (``tests/support/batch_equivalence.py``). Beside the equivalence, the
scenario's own assertions say what those rows are.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from services.restructuring.handlers import derived_id
from services.restructuring.registry import HANDLERS
from services.restructuring.repayments import repayment_applied_batch
from services.restructuring.snapshots import account_cured_batch
from shared.bus.handling import BatchHandler
from shared.clock import SHANGHAI
from tests.support.batch_equivalence import Databases, Event, Poison, Service, bodies, databases_fixture

pytestmark = pytest.mark.integration

RESTRUCTURING = Service("restructuring")
databases = databases_fixture("restructuring")
START = datetime(2026, 3, 23, 12, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("event_type", "batch"), [("repayment.applied", repayment_applied_batch), ("account.cured", account_cured_batch)]
)
def test_registered_handlers_are_the_batch_ones(event_type: str, batch: Any) -> None:
    handler = HANDLERS[event_type]
    assert isinstance(handler, BatchHandler) and handler.fn is batch


# --- scenario ---------------------------------------------------------------------------------


def _overdue_account(account: str, *bills: tuple[str, str]) -> list[Event]:
    """A line granted long ago whose bills (id, principal) are overdue in the snapshot of 03-20."""
    grant = {
        "account_id": account,
        "customer_id": f"c-{account}",
        "identity_hash": "h" * 16,
        "credit_limit": "5000.00",
        "name": "张三",
        "phone": "13800005678",
        "opened_on": "2023-01-01",
        "monthly_income": "20000.00",
    }
    events: list[Event] = [("credit.line.granted", grant)]
    for bill, principal in bills:
        events.append(
            (
                "bill.issued",
                {
                    "bill_id": bill,
                    "account_id": account,
                    "statement_date": "2026-02-18",
                    "due_date": "2026-03-10",
                    "amount": principal,
                },
            )
        )
    events.append(
        (
            "account.delinquency.updated",
            {
                "account_id": account,
                "business_date": "2026-03-20",
                "max_dpd": 10,
                "overdue_principal": "0.00",
                "penalty_interest": "0.00",
                "late_fees": "0.00",
                "total_overdue": "0.00",
                "bills": [
                    {
                        "bill_id": bill,
                        "due_date": "2026-03-10",
                        "dpd": 10,
                        "unpaid_principal": principal,
                        "penalty_interest": "5.00",
                        "late_fee": "30.00",
                    }
                    for bill, principal in bills
                ],
            },
        )
    )
    return events


def _plan_of(account: str) -> list[Event]:
    """Offers asked for, the 3-month equal principal offer accepted: an active plan."""
    offer_id = derived_id("off", account, f"req-{account}", "3", "equal_principal")
    return [
        ("plan.offers.requested", {"request_id": f"req-{account}", "account_id": account}),
        (
            "plan.offer.accepted",
            {"offer_id": offer_id, "account_id": account, "accepted_at": "2026-03-21T10:00:00+08:00"},
        ),
    ]


def _paid(account: str, payment: str, *lines: tuple[str, str, str, str]) -> Event:
    """``lines``: (target, target id, component, amount)."""
    allocations = [{"target": t, "target_id": i, "component": c, "amount": a} for t, i, c, a in lines]
    return "repayment.applied", {
        "payment_id": payment,
        "account_id": account,
        "amount": "1.00",
        "allocations": allocations,
        "credit_balance": "0.00",
        "total_overdue": "0.00",
    }


def _cured(account: str, on: str) -> Event:
    return "account.cured", {"account_id": account, "business_date": on}


def _setup() -> list[Event]:
    return [
        *_overdue_account("A", ("A-b1", "1000.00"), ("A-b2", "500.00")),
        *_overdue_account("P", ("P-b1", "2970.00")),
        *_plan_of("P"),
    ]


def _plan_id() -> str:
    return derived_id("plan", derived_id("off", "P", "req-P", "3", "equal_principal"))


def _night() -> list[Event]:
    plan = _plan_id()
    return [
        _paid(
            "A",
            "pay-1",
            ("bill", "A-b1", "late_fee", "30.00"),
            ("bill", "A-b1", "penalty_interest", "5.00"),
            ("bill", "A-b1", "principal", "400.00"),
        ),
        _paid("A", "pay-2", ("bill", "A-b1", "principal", "700.00")),  # floors at zero
        _paid("P", "pay-3", ("plan", plan, "plan", "600.00")),  # the plan's first installment and more
        _paid("N", "pay-4", ("bill", "N-b1", "principal", "10.00")),  # a bill no event named yet
        _cured("A", "2026-03-23"),  # clears A-b2 (still overdue) ...
        _cured("A", "2026-03-22"),  # ... an older cure changes nothing
        _cured("Z", "2026-03-23"),  # an account no event named yet
        _paid("A", "pay-5", ("bill", "A-b2", "principal", "100.00")),  # after the cure, on the cleared bill
        _paid("P", "pay-6", ("plan", plan, "plan", "600.00"), ("plan", plan, "plan", "5000.00")),  # settles it
        _paid("P", "pay-3", ("plan", plan, "plan", "600.00")),  # the same payment again: applied once
    ]


# --- tests ------------------------------------------------------------------------------------


def test_batches_give_the_same_projection_plans_and_events_as_one_by_one(databases: Databases) -> None:
    setup = bodies(_setup(), START - timedelta(days=3))  # once: every pass has the same event ids
    for event_type, one_batch, guarded in (
        ("repayment.applied", [4, 3], [2] + [1] * 7),
        ("account.cured", [3], [1, 1, 1]),
    ):
        expected = RESTRUCTURING.assert_batches_agree(
            lambda: RESTRUCTURING.prepared(databases, HANDLERS, setup),
            event_type,
            bodies(_night(), START),
            one_batch=one_batch,
            poison=Poison.plan_completed(2, "A", START),
            guarded=guarded,
        )

    # what the scenario says, so that "equal" cannot mean "equally empty"
    bills = {
        b["bill_id"]: (b["unpaid_principal_fen"], b["penalty_fen"], b["late_fee_fen"]) for b in expected["bill_views"]
    }
    assert bills["A-b1"] == (0, 0, 0) and bills["A-b2"] == (0, 0, 0) and bills["N-b1"] == (0, 0, 0)
    (plan,) = expected["plans"]
    assert plan["status"] == "completed"
    assert [(r["payment_id"], r["applied_fen"] > 0) for r in expected["plan_payments"]] == [
        ("pay-3", True),
        ("pay-6", True),
    ]
    types = [e["type"] for e in expected["outbox"]]
    assert "plan.installment.paid" in types and types[-1] == "plan.completed"
    accounts = {a["account_id"]: (str(a["cured_on"]), a["episode_assessed"]) for a in expected["account_views"]}
    assert accounts["A"] == ("2026-03-23", False) and accounts["Z"] == ("2026-03-23", False)
