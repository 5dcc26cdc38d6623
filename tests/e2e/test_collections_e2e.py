"""Collections through the bus and its real worker process, seen from outside.

Accounts' daily close is not built yet, so the events accounts will emit are published
here as an outside producer would, shaped as EVENTS.md says. Jobs run through the
worker's own queue with ``baitiao jobs run`` (``--date``, ``--at``); the outcome is
read as events on the bus, in the SMS outbox file and through ``baitiao collections``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.conftest import System, start_system, stop_system
from tests.support.customers import credit_line, new_id
from tests.support.system import run_cli

pytestmark = pytest.mark.e2e

REDIS_DB = 12  # this file's own Redis database


@pytest.fixture(scope="module")
def collections_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = start_system(REDIS_DB, tmp_path_factory.mktemp("collections-system"), services=("collections",))
    yield running
    stop_system(running)


def _by(key: str, value: Any):
    return lambda payload: payload.get(key) == value


def _wait_applied(system: System, count: int, timeout: float = 30) -> None:
    """Wait until the collections worker applied ``count`` events in all (its inbox)."""
    engine = create_engine(system.databases.url("collections"))
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.scalar(text("SELECT count(*) FROM inbox")) >= count:
                    return
            time.sleep(0.1)
        raise AssertionError(f"collections did not apply {count} events within {timeout}s")
    finally:
        engine.dispose()


def _job(system: System, name: str, day: str, at: str | None = None) -> dict[str, Any]:
    args = ["jobs", "run", name, "--date", day] + (["--at", at] if at else [])
    done = run_cli(args, system.env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _cli_json(system: System, *args: str) -> Any:
    done = run_cli(["collections", *args, "--json"], system.env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_a_delinquent_account_through_the_stages(collections_system: System) -> None:
    system, out = collections_system, collections_system.outside
    account, bill = new_id("acc"), new_id("bill")
    out.publish("credit.line.granted", credit_line(account), account)
    out.publish(
        "bill.issued",
        {
            "bill_id": bill,
            "account_id": account,
            "statement_date": "2026-03-01",
            "due_date": "2026-03-10",
            "amount": "1000.00",
        },
        account,
        producer="accounts",
    )
    _wait_applied(system, 2)

    # grade C pre-due: D-3 (03-07) gets an SMS, D-2 nothing
    _job(system, "collections-daily", "2026-03-07")
    _job(system, "contact-dispatch", "2026-03-07", "09:00")
    sent = out.wait_for("reminder.sent", _by("account_id", account))[0]["payload"]
    assert (sent["template"], sent["stage"], sent["business_date"]) == ("pre_due", "pre_due", "2026-03-07")
    outbox = (Path(system.env["BAITIAO_DATA_DIR"]) / "sms-outbox.jsonl").read_text(encoding="utf-8")
    assert sent["message_id"] in outbox and "张*" in outbox and "张三" not in outbox
    assert "13812345678" not in outbox

    # DPD 31: straight into mid (escalated) with a call task
    out.publish(
        "account.delinquency.updated",
        {
            "account_id": account,
            "business_date": "2026-04-10",
            "max_dpd": 31,
            "overdue_principal": "1000.00",
            "penalty_interest": "15.50",
            "late_fees": "10.00",
            "total_overdue": "1025.50",
            "bills": [
                {
                    "bill_id": bill,
                    "due_date": "2026-03-10",
                    "dpd": 31,
                    "unpaid_principal": "1000.00",
                    "penalty_interest": "15.50",
                    "late_fee": "10.00",
                }
            ],
        },
        account,
        producer="accounts",
        occurred_at="2026-04-10T00:30:00+08:00",
    )
    _wait_applied(system, 3)
    # collections last ran 03-07: it runs 03-08 … 04-10 in order, the stages as of each date,
    # no SMS of those dates sent late; the pre-report notice never sent is queued for 04-10
    daily = _job(system, "collections-daily", "2026-04-10")
    assert daily["dates_run"][0] == "2026-03-08" and daily["dates_run"][-1] == "2026-04-10"
    assert len(daily["dates_run"]) == 34 and daily["contacts_skipped_past_date"] > 0
    assert daily["notices_queued"] == 1
    escalated = out.wait_for("collection.escalated", lambda p: p["account_id"] == account and p["to_stage"] == "mid")
    assert (escalated[0]["payload"]["from_stage"], escalated[0]["payload"]["business_date"]) == ("early", "2026-04-10")
    task = out.wait_for("collection.task.created", _by("account_id", account))[0]["payload"]
    assert (task["kind"], task["stage"], task["due_by"]) == ("call", "mid", "2026-04-10")
    worklist = _cli_json(system, "worklist")
    assert [(t["task_id"], t["customer"], t["phone"]) for t in worklist if t["account_id"] == account] == [
        (task["task_id"], "张*", "138****5678")
    ]

    # cured: the case closes, nothing more goes out
    out.publish(
        "account.cured",
        {"account_id": account, "business_date": "2026-04-11"},
        account,
        producer="accounts",
        occurred_at="2026-04-11T10:00:00+08:00",
    )
    closed = out.wait_for("collection.case.closed", _by("account_id", account))[0]["payload"]
    assert closed["reason"] == "cured"
    _job(system, "collections-daily", "2026-04-14")
    _job(system, "contact-dispatch", "2026-04-14", "09:00")
    out.pump(1.0)
    assert len(out.events("reminder.sent", _by("account_id", account))) == 1

    history = _cli_json(system, "history", account)
    assert history["case"]["status"] == "closed" and history["case"]["closed_reason"] == "cured"
    assert [(c["template"], c["status"]) for c in history["contacts"]] == [
        ("pre_due", "sent"),
        ("call", "task_created"),
        ("grace_first", "suppressed"),
    ]  # the notice: cured first
    assert [t["status"] for t in history["tasks"]] == ["cancelled"]
    kpis = _cli_json(system, "kpis", "--from", "2026-04-10", "--to", "2026-04-30")
    assert kpis["open_on_from"]["cure_rate_by_stage"]["mid"] == {"numerator": 1, "denominator": 1, "value": "1.0000"}
