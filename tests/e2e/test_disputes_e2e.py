"""RULES 4.6 from outside, with real workers and events alone: a disputed purchase is set
aside (not charged, not collected), resolved either way, and seen in `baitiao account show`
and `baitiao account ledger`."""

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
    running = start_system(redis_db + 7, tmp_path_factory.mktemp("disputes"))
    yield running
    stop_system(running)


def _cli(system, *args: str) -> str:
    done = run_cli(list(args), system.env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _customer_with_a_disputed_purchase(system, account: str) -> str:
    out = system.outside
    mine = lambda p: p.get("account_id") == account  # noqa: E731
    out.publish("credit.line.granted", credit_line(account, "5000.00"), account)
    out.wait_for("credit.line.opened", mine)
    out.publish("purchase.requested", purchase(account, "1000.00", "2026-02-14T15:00:00+08:00"), account)
    disputed = new_id("pur")
    out.publish("purchase.requested", purchase(account, "400.00", "2026-02-14T16:00:00+08:00", disputed), account)
    out.wait_for("purchase.approved", mine, count=2)
    return disputed


def test_a_disputed_purchase_resolved_either_way_through_events_alone(system) -> None:
    out = system.outside
    upheld, rejected = new_id("acc"), new_id("acc")
    purchases = {a: _customer_with_a_disputed_purchase(system, a) for a in (upheld, rejected)}
    _cli(system, "jobs", "run", "statements", "--date", "2026-03-01")
    for account, purchase_id in purchases.items():
        dispute = {
            "dispute_id": f"dsp-{account}",
            "account_id": account,
            "purchase_id": purchase_id,
            "amount": "400.00",
            "reason": "not_as_described",
            "opened_at": "2026-03-05T10:00:00+08:00",
        }
        out.publish("dispute.opened", dispute, account, occurred_at="2026-03-05T10:00:00+08:00")
        out.wait_for("dispute.accepted", lambda p, a=account: p.get("account_id") == a)
    _cli(system, "jobs", "run", "daily-close", "--date", "2026-03-11")
    _cli(system, "jobs", "run", "daily-close", "--date", "2026-03-20")
    for account in purchases:
        snapshot = out.wait_for(
            "account.delinquency.updated",
            lambda p, a=account: p.get("account_id") == a and p["business_date"] == "2026-03-20",
        )[0]["payload"]
        assert (snapshot["overdue_principal"], snapshot["penalty_interest"], snapshot["late_fees"]) == (
            "1000.00",
            "5.00",
            "10.00",
        )
    for account, outcome in ((upheld, "upheld"), (rejected, "rejected")):
        resolution = {
            "resolution_id": f"res-{account}",
            "dispute_id": f"dsp-{account}",
            "outcome": outcome,
            "resolved_by": "op-9",
        }
        out.publish("dispute.resolved", resolution, f"dsp-{account}", occurred_at="2026-03-20T15:00:00+08:00")
        closed = out.wait_for("dispute.closed", lambda p, a=account: p.get("account_id") == a)[0]["payload"]
        assert closed["outcome"] == outcome
    shown = json.loads(_cli(system, "account", "show", upheld, "--json"))
    assert shown["unpaid_principal"] == "1000.00" and shown["disputes"][0]["credited"] == "400.00"
    ledger = json.loads(_cli(system, "account", "ledger", upheld, "--json"))
    assert any(e["kind"] == "dispute_upheld" for e in ledger["entries"])
    assert ledger["totals"]["debits"] == ledger["totals"]["credits"]
    shown = json.loads(_cli(system, "account", "show", rejected, "--json"))
    assert shown["unpaid_principal"] == "1400.00" and shown["bills"][0]["disputed"] == "0.00"
    _cli(system, "jobs", "run", "daily-close", "--date", "2026-03-21")
    snapshot = out.wait_for(
        "account.delinquency.updated", lambda p: p.get("account_id") == rejected and p["business_date"] == "2026-03-21"
    )[0]["payload"]
    assert (snapshot["overdue_principal"], snapshot["penalty_interest"]) == ("1400.00", "5.70")
    assert date.fromisoformat(snapshot["business_date"]) == date(2026, 3, 21)
