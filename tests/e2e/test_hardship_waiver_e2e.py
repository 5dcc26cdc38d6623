"""RULES 4.5 from outside, with real workers: `baitiao account waive` above the threshold
waits; the requester cannot approve it; a second operator's approval applies it through
the ledger, seen in `baitiao account show` and `baitiao account ledger`."""

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
    """A system of its own, its approval threshold 5.00 (a rules file, as a deployment sets it)."""
    base = tmp_path_factory.mktemp("waiver")
    rules = base / "rules.yaml"
    rules.write_text("waivers: {approval_threshold: '5.00'}\n", encoding="utf-8")
    running = start_system(redis_db + 8, base, extra_env={"BAITIAO_RULES_FILE": str(rules)})
    yield running
    stop_system(running)


def _cli(system, *args: str) -> str:
    done = run_cli(list(args), system.env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_waiver_above_the_threshold_needs_a_second_operator(system) -> None:
    out = system.outside
    account = new_id("acc")
    mine = lambda p: p.get("account_id") == account  # noqa: E731
    out.publish("credit.line.granted", credit_line(account, "5000.00"), account)
    out.wait_for("credit.line.opened", mine)
    out.publish("purchase.requested", purchase(account, "1000.00", "2026-02-14T15:00:00+08:00"), account)
    out.wait_for("purchase.approved", mine)
    _cli(system, "jobs", "run", "statements", "--date", "2026-03-01")
    bill_id = out.wait_for("bill.issued", mine)[0]["payload"]["bill_id"]
    _cli(system, "jobs", "run", "daily-close", "--date", "2026-03-11")
    _cli(system, "jobs", "run", "daily-close", "--date", "2026-03-20")  # late fee 10.00

    waive = ["account", "waive", account, "--bill", bill_id, "--component", "late_fee", "--amount", "10.00"]
    _cli(system, *waive, "--reason", "hardship", "--operator", "op-1", "--request-id", "wv-1", "--date", "2026-03-20")
    assert out.wait_for("waiver.pending", mine)[0]["payload"]["waiver_id"] == "wv-1"
    _cli(system, "account", "waiver", "approve", "wv-1", "--operator", "op-1", "--decision-id", "dc-1")
    rejected = out.wait_for("waiver.decision.rejected", lambda p: p.get("waiver_id") == "wv-1")[0]["payload"]
    assert rejected["reason"] == "approver_is_requester"
    shown = json.loads(_cli(system, "account", "show", account, "--json"))
    assert shown["bills"][0]["unpaid_late_fee"] == "10.00" and shown["waivers"][0]["status"] == "pending"

    _cli(system, "account", "waiver", "approve", "wv-1", "--operator", "op-2", "--decision-id", "dc-2")
    applied = out.wait_for("waiver.applied", mine)[0]["payload"]
    assert (applied["amount"], applied["approved_by"]) == ("10.00", "op-2")
    shown = json.loads(_cli(system, "account", "show", account, "--json"))
    assert shown["bills"][0]["unpaid_late_fee"] == "0.00" and shown["waivers"][0]["status"] == "applied"
    ledger = json.loads(_cli(system, "account", "ledger", account, "--json"))
    assert "hardship_waiver" in json.dumps(ledger)
    assert date.fromisoformat(applied["applied_on"]) >= date(2026, 3, 20)
