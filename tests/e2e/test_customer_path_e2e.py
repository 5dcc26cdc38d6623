"""A customer's whole path across the three services, from outside only (RULES 3, 6, 8):
overdue, assessed, offered, accepted (the bill leaves the overdue count, penalty stops,
collections goes quiet), two installments missed (the plan defaults, the account is
locked again and collections resumes)."""

from __future__ import annotations

import json
from decimal import Decimal
from datetime import date, timedelta

import pytest

from tests.e2e.conftest import start_system, stop_system
from tests.support.customers import credit_line, new_id, purchase
from tests.support.system import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(redis_db, tmp_path_factory):
    running = start_system(redis_db + 3, tmp_path_factory.mktemp("path"))
    yield running
    stop_system(running)


def _job(system, name: str, day: date, at: str | None = None) -> dict:
    args = ["jobs", "run", name, "--date", day.isoformat()] + (["--at", at] if at else [])
    done = run_cli(args, system.env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_plan_accepted_then_defaulted(system) -> None:
    out = system.outside
    account = new_id("acc")
    mine = lambda p: p.get("account_id") == account  # noqa: E731
    out.publish(
        "credit.line.granted", credit_line(account, "5000.00", opened_on="2023-01-01", income="20000.00"), account
    )
    out.wait_for("credit.line.opened", mine)
    out.publish("purchase.requested", purchase(account, "3000.00", "2026-02-14T15:00:00+08:00"), account)
    out.wait_for("purchase.approved", mine)
    _job(system, "statements", date(2026, 3, 1))
    bill_id = out.wait_for("bill.issued", mine)[0]["payload"]["bill_id"]
    _job(system, "daily-close", date(2026, 3, 10))
    _job(system, "daily-close", date(2026, 3, 20))  # DPD 10
    assert out.wait_for("risk.assessed", mine)[0]["payload"]["grade"] in "ABCD"
    out.wait_for("account.delinquency.updated", lambda p: mine(p) and p["max_dpd"] == 10)
    out.pump(1.0)

    request = new_id("req")
    out.publish(
        "plan.offers.requested",
        {"request_id": request, "account_id": account},
        account,
        occurred_at="2026-03-20T10:00:00+08:00",
    )
    offers = out.wait_for("plan.offered", lambda p: p.get("request_id") == request)[0]["payload"]["offers"]
    offer = next(o for o in offers if o["term"] == 6)
    out.publish(
        "plan.offer.accepted",
        {"offer_id": offer["offer_id"], "account_id": account, "accepted_at": "2026-03-20T11:00:00+08:00"},
        account,
        occurred_at="2026-03-20T11:00:00+08:00",
    )
    activated = out.wait_for("plan.activated", mine)[0]["payload"]
    assert activated["bill_ids"] == [bill_id]
    out.wait_for("account.restrictions.changed", lambda p: mine(p) and p["cause"] == "plan")
    out.wait_for("collection.case.closed", lambda p: mine(p) and p["reason"] == "restructured")

    # Bills left the overdue count and penalty stopped: no delinquency snapshot for this account.
    _job(system, "daily-close", date(2026, 3, 25))
    shown = json.loads(run_cli(["account", "show", account, "--json"], system.env).stdout)
    bill = next(b for b in shown["bills"] if b["bill_id"] == bill_id)
    assert bill["in_plan"] and bill["unpaid_principal"] == "0.00"
    assert not out.events("account.delinquency.updated", lambda p: mine(p) and p["business_date"] >= "2026-03-21")
    # Collections goes quiet: no reminder for this account while the plan is active.
    out.pump(0.5)
    _job(system, "collections-daily", date(2026, 3, 25))
    _job(system, "contact-dispatch", date(2026, 3, 25), at="10:00")
    out.pump(1.0)
    assert not out.events("reminder.sent", lambda p: mine(p) and p["business_date"] >= "2026-03-21")

    # Two installments missed: the plan defaults, accounts turns it back into an overdue bill.
    _job(system, "plan-monitor", date(2026, 4, 21))
    _job(system, "plan-monitor", date(2026, 5, 21))
    defaulted = out.wait_for("plan.defaulted", mine)[0]["payload"]
    assert defaulted["first_missed_due_date"] == "2026-04-20"
    relocked = out.wait_for(
        "account.restrictions.changed", lambda p: mine(p) and p["business_date"] == defaulted["business_date"]
    )[-1]["payload"]
    assert relocked["level"] >= 2 and "borrowing_suspended" in relocked["measures"]
    back = out.wait_for("bill.issued", lambda p: mine(p) and p["bill_id"].endswith("-default"))[0]["payload"]
    assert Decimal(back["amount"]) == Decimal(defaulted["outstanding_principal"]) + Decimal(defaulted["fees_due"])
    # Collections resumes with the account (a task or a reminder for it).
    out.pump(1.0)
    day = date.fromisoformat(defaulted["business_date"]) + timedelta(days=1)
    _job(system, "daily-close", day)
    out.pump(1.0)
    _job(system, "collections-daily", day)
    _job(system, "contact-dispatch", day, at="10:00")
    out.pump(1.0)
    resumed = out.events("collection.task.created", mine) + out.events(
        "reminder.sent", lambda p: mine(p) and p["business_date"] == day.isoformat()
    )
    assert resumed, "collections did not resume after the default"
