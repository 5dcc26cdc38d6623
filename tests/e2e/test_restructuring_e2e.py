"""Restructuring through the bus and its real worker process.

Accounts' daily close and repayment allocation are not built yet, so the events
accounts will emit (``bill.issued``, ``bill.overdue``, ``account.delinquency.updated``,
``repayment.applied``) are published here as an outside producer would, shaped as
EVENTS.md says. When accounts is done, the cross-service path (bills leave the
overdue count, collections goes quiet, the account is locked again on default) belongs
in this file too, driven by purchases, statements and the daily close instead.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.customers import credit_line, new_id
from tests.support.system import OutsideSystem, run_cli

pytestmark = pytest.mark.e2e


def _by(key: str, value: Any):
    return lambda payload: payload.get(key) == value


def _overdue(out: OutsideSystem, account: str) -> str:
    """As accounts would report it: one 2,970.00 bill due 03-10 with a 30.00 late fee, DPD 10."""
    bill = new_id("bill")
    out.publish("credit.line.granted", credit_line(account, opened_on="2023-01-01", income="20000.00"), account)
    out.publish(
        "bill.issued",
        {
            "bill_id": bill,
            "account_id": account,
            "statement_date": "2026-03-01",
            "due_date": "2026-03-10",
            "amount": "2970.00",
        },
        account,
        producer="accounts",
    )
    out.publish(
        "bill.overdue",
        {
            "bill_id": bill,
            "account_id": account,
            "due_date": "2026-03-10",
            "business_date": "2026-03-11",
            "dpd": 1,
            "unpaid_principal": "2970.00",
        },
        account,
        producer="accounts",
        occurred_at="2026-03-11T00:30:00+08:00",
    )
    out.wait_for("risk.assessed", _by("account_id", account))
    out.publish(
        "account.delinquency.updated",
        {
            "account_id": account,
            "business_date": "2026-03-20",
            "max_dpd": 10,
            "overdue_principal": "2970.00",
            "penalty_interest": "0.00",
            "late_fees": "30.00",
            "total_overdue": "3000.00",
            "bills": [
                {
                    "bill_id": bill,
                    "due_date": "2026-03-10",
                    "dpd": 10,
                    "unpaid_principal": "2970.00",
                    "penalty_interest": "0.00",
                    "late_fee": "30.00",
                }
            ],
        },
        account,
        producer="accounts",
        occurred_at="2026-03-20T00:30:00+08:00",
    )
    return bill


def _activate(out: OutsideSystem, account: str, term: int) -> dict[str, Any]:
    bill = _overdue(out, account)
    request = new_id("req")
    out.pump(1.0)  # let the snapshot land before asking
    out.publish(
        "plan.offers.requested",
        {"request_id": request, "account_id": account},
        account,
        occurred_at="2026-03-20T10:00:00+08:00",
    )
    offered = out.wait_for("plan.offered", _by("request_id", request))[0]["payload"]
    offer = next(o for o in offered["offers"] if o["term"] == term)
    out.publish(
        "plan.offer.accepted",
        {"offer_id": offer["offer_id"], "account_id": account, "accepted_at": "2026-03-22T09:00:00+08:00"},
        account,
        occurred_at="2026-03-22T09:00:00+08:00",
    )
    activated = out.wait_for("plan.activated", _by("offer_id", offer["offer_id"]))[0]["payload"]
    assert activated["bill_ids"] == [bill]
    return activated


def _pay(out: OutsideSystem, account: str, plan_id: str, amount: str, when: str) -> None:
    out.publish(
        "repayment.applied",
        {
            "payment_id": new_id("pay"),
            "account_id": account,
            "amount": amount,
            "allocations": [{"target": "plan", "target_id": plan_id, "component": "plan", "amount": amount}],
            "credit_balance": "0.00",
            "total_overdue": "0.00",
        },
        account,
        producer="accounts",
        occurred_at=when,
    )


def test_offer_accept_pay_adjust_and_settle_early(system) -> None:
    out = system.outside
    account = new_id("acc")
    plan = _activate(out, account, term=6)
    assert {s["total"] for s in plan["schedule"]} == {"518.00"}
    plan_id = plan["plan_id"]

    _pay(out, account, plan_id, "518.00", "2026-04-22T12:00:00+08:00")
    paid = out.wait_for("plan.installment.paid", _by("plan_id", plan_id))[0]["payload"]
    assert (paid["period"], paid["paid_on"]) == (1, "2026-04-22")

    request = new_id("adj")
    out.publish(
        "plan.adjustment.requested",
        {"request_id": request, "plan_id": plan_id, "kind": "extend", "new_term": 10},
        plan_id,
        occurred_at="2026-05-01T10:00:00+08:00",
    )
    adjusted = out.wait_for("plan.adjusted", _by("request_id", request))[0]["payload"]
    assert adjusted["monthly_payment"] == "265.00" and len(adjusted["schedule"]) == 10

    # early settlement on 05-10: 2,500.00 principal + the current period's fee 15.00
    _pay(out, account, plan_id, "2515.00", "2026-05-10T12:00:00+08:00")
    completed = out.wait_for("plan.completed", _by("plan_id", plan_id))[0]["payload"]
    assert completed["completed_on"] == "2026-05-10"


def test_two_missed_installments_default_the_plan(system) -> None:
    out = system.outside
    account = new_id("acc")
    plan_id = _activate(out, account, term=6)["plan_id"]
    result = run_cli(["jobs", "run", "plan-monitor", "--date", "2026-04-23"], system.env, timeout=120)
    assert result.returncode == 0, result.stderr
    overdue = out.wait_for("plan.installment.overdue", _by("plan_id", plan_id))[0]["payload"]
    assert (overdue["period"], overdue["dpd"], overdue["amount"]) == (1, 1, "518.00")
    result = run_cli(["jobs", "run", "plan-monitor", "--date", "2026-05-23"], system.env, timeout=120)
    assert result.returncode == 0, result.stderr
    defaulted = out.wait_for("plan.defaulted", _by("plan_id", plan_id))[0]["payload"]
    assert defaulted == {
        "plan_id": plan_id,
        "account_id": account,
        "business_date": "2026-05-23",
        "outstanding_principal": "3000.00",
        "fees_due": "36.00",
        "first_missed_due_date": "2026-04-22",
    }
