"""RULES 4.6 and 2.7 in collections: a disputed amount, or one within the arrears tolerance,
is not collected; once a dispute is rejected the bill is collected again."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from shared.clock import at_local

from .conftest import World

pytestmark = pytest.mark.integration

DUE = date(2026, 3, 10)


def test_a_bill_owing_only_its_disputed_amount_is_not_collected(world: World) -> None:
    account, bill_id = "dsp-1", "dsp-1-b1"
    world.grant(account)
    world.bill(account, bill_id, DUE, amount="400.00")
    accepted = {
        "dispute_id": "dsp-1-d",
        "account_id": account,
        "bill_id": bill_id,
        "purchase_id": None,
        "amount": "400.00",
        "reason": "not_received",
        "opened_on": "2026-03-05",
    }
    world.send("dispute.accepted", accepted, at=at_local(date(2026, 3, 5), "10:00"))
    for day in (DUE + timedelta(days=1), DUE + timedelta(days=2)):
        world.day(day)
    assert world.events(account, "reminder.sent") == []
    closed = {
        "resolution_id": "dsp-1-r",
        "dispute_id": "dsp-1-d",
        "account_id": account,
        "bill_id": bill_id,
        "outcome": "rejected",
        "credited": "0.00",
        "penalty_reversed": "0.00",
        "late_fee_reversed": "0.00",
        "owes_again": "400.00",
        "resolved_by": "op-9",
        "resolved_on": "2026-03-12",
    }
    world.send("dispute.closed", closed, at=at_local(date(2026, 3, 12), "10:00"))
    world.day(DUE + timedelta(days=3))
    assert [e["business_date"] for e in world.events(account, "reminder.sent")] == ["2026-03-13"]


def test_a_bill_paid_into_the_arrears_tolerance_before_its_due_date_is_not_collected(world: World) -> None:
    """RULES 2.7: 0.80 left of 1,000.00 is owed but never overdue: no grace contact."""
    account, bill_id = "tol-1", "tol-1-b1"
    world.grant(account)
    world.bill(account, bill_id, DUE)
    applied = {
        "payment_id": "tol-1-pay",
        "account_id": account,
        "amount": "999.20",
        "allocations": [{"target": "bill", "target_id": bill_id, "component": "principal", "amount": "999.20"}],
        "credit_balance": "0.00",
        "total_overdue": "0.00",
        "paid_on": "2026-03-09",
    }
    world.send("repayment.applied", applied, at=at_local(date(2026, 3, 9), "11:00"))
    for day in (DUE + timedelta(days=1), DUE + timedelta(days=2), DUE + timedelta(days=5)):
        world.day(day)
    assert world.events(account, "reminder.sent") == []
