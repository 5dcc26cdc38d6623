"""No customer is reported before being told, and collections catches up like the close
(RULES 5.4, 6.10, 6.11), through the bus with the real accounts and collections workers.

Four missed days: the close of 03-15 closes 03-12 … 03-15 (the DPD-4 mark and the late fee
on 03-14), collections last ran on 03-10. The March report, generated before collections
catches up, leaves both marks out; collections-daily for 03-15 runs 03-11 … 03-15, sends
no SMS late but the notice: by SMS to the customer whose phone is known, by a letter task
to the one whose phone was reported wrong; accounts records both notices and the April
report carries the marks.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.conftest import System, start_system, stop_system
from tests.support.customers import credit_line, new_id, purchase
from tests.support.system import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(redis_db: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = start_system(redis_db + 10, tmp_path_factory.mktemp("notice"), services=("accounts", "collections"))
    yield running
    stop_system(running)


def _job(system: System, name: str, day: str, at: str | None = None) -> dict[str, Any]:
    done = run_cli(["jobs", "run", name, "--date", day] + (["--at", at] if at else []), system.env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _bill(system: System, account: str) -> dict[str, Any]:
    done = run_cli(["account", "show", account, "--json"], system.env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    bills = json.loads(done.stdout)["bills"]
    assert len(bills) == 1
    return bills[0]


def _until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout}s")


def _collections_scalar(system: System, sql: str, **params: Any) -> Any:
    engine = create_engine(system.databases.url("collections"))
    try:
        with engine.begin() as conn:
            return conn.scalar(text(sql), params)
    finally:
        engine.dispose()


def _collections_execute(system: System, sql: str, **params: Any) -> None:
    engine = create_engine(system.databases.url("collections"))
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


def _report(summary: dict[str, Any], accounts: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    with open(summary["path"], encoding="utf-8", newline="") as handle:
        return {
            row["account_id"]: (row["status"], row["max_dpd"])
            for row in csv.DictReader(handle)
            if row["account_id"] in accounts
        }


def test_the_notice_goes_out_before_any_report_carries_the_mark(system: System) -> None:
    out = system.outside
    own, wrong = new_id("own"), new_id("wrong")
    for account in (own, wrong):
        out.publish("credit.line.granted", credit_line(account), account)
        out.wait_for("credit.line.opened", lambda p, a=account: p["account_id"] == a)
        out.publish("purchase.requested", purchase(account, "1000.00"), account)
        out.wait_for("purchase.approved", lambda p, a=account: p["account_id"] == a)
    statements = _job(system, "statements", "2026-03-01")
    assert (statements["bills_issued"], statements["statement_dates"]) == (2, ["2026-03-01"])
    _until(
        lambda: (
            _collections_scalar(system, "SELECT count(*) FROM bills WHERE account_id IN (:a, :b)", a=own, b=wrong) == 2
        ),
        "collections knows both bills",
    )
    _job(system, "collections-daily", "2026-03-10")  # collections' last run before the outage
    _job(system, "daily-close", "2026-03-11")
    # the collectors' desk reported the number wrong (collection.outcome.recorded wrong_number)
    _collections_execute(system, "UPDATE cases SET phone_reported_wrong = true WHERE account_id = :a", a=wrong)

    close = _job(system, "daily-close", "2026-03-15")  # four missed days closed in order
    assert close["dates_closed"] == ["2026-03-12", "2026-03-13", "2026-03-14", "2026-03-15"]
    assert close["penalty_accrued"] == "4.00"  # 0.50 a day on each 1,000.00, four dates, two accounts
    marked = _bill(system, own)
    assert (marked["bureau_marked_on"], marked["late_fee_charged"], marked["report_notice_on"]) == (
        "2026-03-14",
        "10.00",
        None,
    )

    march = _job(system, "credit-report", "2026-04-01")  # generated before anyone was told
    assert _report(march, (own, wrong)) == {own: ("N", "0"), wrong: ("N", "0")}

    _until(
        lambda: (
            _collections_scalar(
                system,
                "SELECT count(*) FROM cases WHERE account_id IN (:a, :b) AND delinquency_as_of = '2026-03-15'",
                a=own,
                b=wrong,
            )
            == 2
        ),
        "collections has the close of 03-15",
    )
    daily = _job(system, "collections-daily", "2026-03-15")
    assert daily["dates_run"] == ["2026-03-11", "2026-03-12", "2026-03-13", "2026-03-14", "2026-03-15"]
    assert daily["contacts_skipped_past_date"] == 6  # DPD 1, 3 and 4 SMS of two accounts: not sent late
    assert (daily["notices_queued"], daily["letters_created"]) == (1, 1)
    letter = out.wait_for("collection.task.created", lambda p: p["account_id"] == wrong)[0]["payload"]
    assert (letter["kind"], letter["due_by"]) == ("letter", "2026-03-16")

    _job(system, "contact-dispatch", "2026-03-15", at="09:00")
    sms = out.wait_for("reminder.sent", lambda p: p["account_id"] == own)
    assert [(e["payload"]["template"], e["payload"]["business_date"]) for e in sms] == [("grace_first", "2026-03-15")]
    notices = {
        e["payload"]["account_id"]: e["payload"]
        for e in out.wait_for("collection.notice.sent", lambda p: p["account_id"] in (own, wrong), count=2)
    }
    assert (notices[own]["channel"], notices[wrong]["channel"]) == ("sms", "letter")
    assert notices[own]["notice_id"] == sms[0]["payload"]["message_id"]
    _until(
        lambda: (
            _bill(system, own)["report_notice_on"] == "2026-03-15"
            and _bill(system, wrong)["report_notice_on"] == "2026-03-15"
        ),
        "accounts records both notices",
    )
    assert (_bill(system, own)["report_notice_channel"], _bill(system, wrong)["report_notice_channel"]) == (
        "sms",
        "letter",
    )
    shown = run_cli(["account", "show", own], system.env, timeout=60)
    assert "bureau notice" in shown.stdout and "sms 2026-03-15" in shown.stdout

    april = _job(system, "credit-report", "2026-05-01")  # the next report after the notice carries the mark
    due = date(2026, 3, 10)
    dpd = str((date(2026, 4, 30) - due).days)
    assert _report(april, (own, wrong)) == {own: ("2", dpd), wrong: ("2", dpd)}
