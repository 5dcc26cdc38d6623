"""RULES section 2's worked example, to the fen, from outside: plain kombu events in,
`baitiao jobs run` for the jobs, replies observed on the bus and `baitiao account show`."""

from __future__ import annotations

import json
from datetime import date

import pytest

from tests.e2e.conftest import start_system, stop_system
from tests.support.customers import credit_line, new_id, purchase, repayment
from tests.support.system import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(redis_db, tmp_path_factory):
    """A system of its own: the daily close is global by date, so these dates must not mix with others."""
    running = start_system(redis_db + 2, tmp_path_factory.mktemp("worked"))
    yield running
    stop_system(running)


def _job(system, name: str, day: date) -> dict:
    done = run_cli(["jobs", "run", name, "--date", day.isoformat()], system.env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _show(system, account: str) -> dict:
    shown = run_cli(["account", "show", account, "--json"], system.env)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def test_worked_example_through_the_bus(system) -> None:
    out = system.outside
    account = new_id("acc")
    mine = lambda p: p.get("account_id") == account  # noqa: E731
    out.publish("credit.line.granted", credit_line(account, "5000.00"), account)
    out.wait_for("credit.line.opened", mine)
    out.publish("purchase.requested", purchase(account, "1000.00", "2026-02-14T15:00:00+08:00"), account)
    out.wait_for("purchase.approved", mine)

    _job(system, "statements", date(2026, 3, 1))
    bill = out.wait_for("bill.issued", mine)[0]["payload"]
    assert (bill["amount"], bill["due_date"]) == ("1000.00", "2026-03-10")

    assert _job(system, "daily-close", date(2026, 3, 10))["status"] == "closed"
    _job(system, "daily-close", date(2026, 3, 11))
    assert out.wait_for("bill.overdue", mine)[0]["payload"]["dpd"] == 1
    suspended = out.wait_for("account.restrictions.changed", mine)[-1]["payload"]
    assert suspended["level"] == 1 and suspended["measures"] == ["borrowing_suspended"]
    declined = purchase(account, "1.00", "2026-03-11T12:00:00+08:00")
    out.publish("purchase.requested", declined, account)
    assert out.wait_for("purchase.declined", mine)[0]["payload"]["reason"] == "account_restricted"

    summary = _job(system, "daily-close", date(2026, 3, 14))
    assert summary["dates_closed"] == ["2026-03-12", "2026-03-13", "2026-03-14"]
    cut = out.wait_for("account.restrictions.changed", lambda p: mine(p) and p["level"] == 2)[0]["payload"]
    assert cut["credit_limit"] == "2500.00" and "reported_to_bureau" in cut["measures"]
    view = _show(system, account)
    assert view["bills"][0]["unpaid_penalty"] == "2.00" and view["bills"][0]["unpaid_late_fee"] == "10.00"

    _job(system, "daily-close", date(2026, 3, 20))
    out.publish("repayment.received", repayment(account, "500.00", "2026-03-20T18:00:00+08:00"), account)
    applied = out.wait_for("repayment.applied", mine)[0]["payload"]
    assert [(a["component"], a["amount"]) for a in applied["allocations"]] == [
        ("penalty_interest", "5.00"),
        ("late_fee", "10.00"),
        ("principal", "485.00"),
    ]

    _job(system, "daily-close", date(2026, 3, 21))
    latest = out.wait_for("account.delinquency.updated", lambda p: mine(p) and p["business_date"] == "2026-03-21")[0][
        "payload"
    ]
    assert (latest["overdue_principal"], latest["penalty_interest"], latest["total_overdue"]) == (
        "515.00",
        "0.26",
        "515.26",
    )
    view = _show(system, account)
    assert view["credit_limit"] == "2500.00"
    assert view["bills"][0]["unpaid_principal"] == "515.00" and view["bills"][0]["dpd"] == 11
