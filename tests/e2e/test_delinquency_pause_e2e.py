"""RULES 2.8 from outside, with real workers: `baitiao account pause` and `resume` put the
commands on the bus, the close leaves the paused account alone, collections contacts
nobody, and after the resume DPD counts on from where it stood."""

from __future__ import annotations

import json
from datetime import date

import pytest

from tests.e2e.conftest import start_system, stop_system
from tests.support.customers import credit_line, new_id, purchase
from tests.support.system import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(redis_db, tmp_path_factory):
    """A system of its own: the daily close is global by date."""
    running = start_system(redis_db + 6, tmp_path_factory.mktemp("pause"))
    yield running
    stop_system(running)


def _cli(system, *args: str) -> str:
    done = run_cli(list(args), system.env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _job(system, name: str, day: date, at: str | None = None) -> dict:
    extra = ["--at", at] if at else []
    return json.loads(_cli(system, "jobs", "run", name, "--date", day.isoformat(), *extra))


def test_a_paused_account_accrues_nothing_is_contacted_by_nobody_and_counts_on(system) -> None:
    out = system.outside
    account = new_id("acc")
    mine = lambda p: p.get("account_id") == account  # noqa: E731
    out.publish("credit.line.granted", credit_line(account, "5000.00"), account)
    out.wait_for("credit.line.opened", mine)
    out.publish("purchase.requested", purchase(account, "1000.00", "2026-02-14T15:00:00+08:00"), account)
    out.wait_for("purchase.approved", mine)
    _job(system, "statements", date(2026, 3, 1))
    out.wait_for("bill.issued", mine)
    _job(system, "daily-close", date(2026, 3, 11))  # the first close: the ones after catch up
    _job(system, "daily-close", date(2026, 3, 12))  # DPD 2, penalty 1.00
    out.wait_for("account.delinquency.updated", lambda p: mine(p) and p["business_date"] == "2026-03-12")

    _cli(
        system,
        "account",
        "pause",
        account,
        "--reason",
        "dispute",
        "--operator",
        "op-7",
        "--request-id",
        "pz-1",
        "--date",
        "2026-03-12",
    )
    paused = out.wait_for("delinquency.paused", mine)[0]["payload"]
    assert (paused["request_id"], paused["reason"]) == ("pz-1", "dispute")
    _cli(
        system,
        "account",
        "pause",
        account,
        "--reason",
        "dispute",
        "--operator",
        "op-7",
        "--request-id",
        "pz-2",
        "--date",
        "2026-03-12",
    )
    assert out.wait_for("delinquency.pause.rejected", mine)[0]["payload"]["reason"] == "already_paused"

    _job(system, "daily-close", date(2026, 3, 31))
    shown = json.loads(_cli(system, "account", "show", account, "--json"))
    bill = shown["bills"][0]
    assert (bill["dpd"], bill["unpaid_penalty"], bill["unpaid_late_fee"]) == (2, "1.00", "0.00")
    assert shown["pause"]["reason"] == "dispute" and shown["level"] == 1
    _job(system, "collections-daily", date(2026, 3, 31), at="07:00")
    _job(system, "contact-dispatch", date(2026, 3, 31), at="10:00")
    assert out.events("reminder.sent", mine) == []
    assert out.events("collection.task.created", mine) == []

    _cli(system, "account", "resume", account, "--operator", "op-8", "--request-id", "rz-1", "--date", "2026-03-31")
    resumed = out.wait_for("delinquency.resumed", mine)[0]["payload"]
    assert resumed["bills"][0]["days_not_counted"] == 19 and resumed["resumed_on"] == "2026-03-31"
    _job(system, "daily-close", date(2026, 4, 1))
    snapshot = out.wait_for("account.delinquency.updated", lambda p: mine(p) and p["business_date"] == "2026-04-01")
    assert snapshot[0]["payload"]["max_dpd"] == 3 and snapshot[0]["payload"]["penalty_interest"] == "1.50"
    shown = json.loads(_cli(system, "account", "show", account, "--json"))
    assert shown["pause"] is None
    assert {
        "measure": "delinquency_paused",
        "cause": "dispute",
        "added_on": "2026-03-12",
        "lifted_on": "2026-03-31",
    } in (shown["restrictions"]["history"])
