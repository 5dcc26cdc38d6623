"""The monthly credit report (RULES 5) on a real PostgreSQL: one line per account with its
month-end status, both files, the event, idempotency, chunked slices and the 5-year purge."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.accounts import credit_report as job
from services.accounts.credit_report import credit_report, purge_cutoff
from services.accounts.models import BUS, BureauMark, CreditReportRun
from shared.bus.outbox import Outbox
from shared.clock import SHANGHAI, FixedClock
from shared.db import transaction
from shared.jobs import JobContext, JobResult
from shared.rules import CreditReportRules, ProductRules
from shared.settings import Settings
from tests.integration.accounts.pg import AccountsDb, account, accounts_db, bill, mark, plan, purchase, restriction

__all__ = ["accounts_db"]  # the fixture, imported for this module

# Business date 2026-05-01 reports April 2026: month end 2026-04-30.
EXPECTED_APRIL = {
    "acc-n-paid": "N",  # bill settled before the month end
    "acc-n-fresh": "N",  # no bill at all
    "acc-n-not-due": "N",  # bill issued, due after the month end
    "acc-1": "1",  # due 04-20: DPD 10
    "acc-2": "2",  # due 03-15: DPD 46
    "acc-2-paid-later": "2",  # due 03-01, settled 05-01 (after the month end): DPD 60 → still 2
    "acc-3": "3",  # due 02-28: DPD 61
    "acc-6-charged-later": "6",  # DPD 180 at month end, charged off on 05-01 → not yet G
    "acc-7": "7",  # DPD 211, never charged off
    "acc-g": "G",  # charged off on 04-05, unsettled
    "acc-r": "R",  # plan active since 04-10 (its bill would say 2)
    "acc-r-later": "2",  # plan activated 05-01: at the month end the bill still counted
    "acc-plan-done": "N",  # plan completed in March, nothing owed
    "acc-c": "C",  # closed, everything settled by 04-20
    "acc-c-after-g": "C",  # charged off, then recovered in full and closed
    "acc-closed-owing": "1",  # closed, but its bill was settled only after the month end
    "acc-closed-unbilled": "N",  # closed, a purchase posted in April billed in May: still owed
    "acc-closed-later": "N",  # nothing owed but closed only after the month end
    # notice before report (RULES 5.4): the overdue is left out until the customer was told
    "acc-2-unnoticed": "N",  # due 03-15, DPD 46 and marked, but never noticed
    "acc-2-noticed-may": "N",  # due 03-15, noticed 05-01: after the month end
    "acc-2-noticed-04-30": "2",  # noticed on the month's last day: reported
    "acc-g-unnoticed": "N",  # charged off on 04-05, never noticed: not reported as G either
}
NOT_YET_OPEN = "acc-opened-may"


def _populate(db: AccountsDb) -> None:
    with transaction(db.engine) as s:
        accounts = {a: account(a) for a in EXPECTED_APRIL}
        accounts[NOT_YET_OPEN] = account(NOT_YET_OPEN, opened_on="2026-05-01")
        for key in ("acc-c", "acc-c-after-g", "acc-closed-owing", "acc-closed-unbilled", "acc-closed-later"):
            accounts[key].status = "closed"
        s.add_all(accounts.values())
        s.flush()
        a = accounts
        s.add_all(
            [
                bill(a["acc-n-paid"], "b-n-paid", statement="2026-03-20", due="2026-04-10", settled_on="2026-04-12"),
                bill(a["acc-n-not-due"], "b-n-not-due", statement="2026-04-20", due="2026-05-10"),
                bill(a["acc-1"], "b-1", statement="2026-04-01", due="2026-04-20"),
                bill(a["acc-2"], "b-2", statement="2026-02-25", due="2026-03-15"),
                bill(
                    a["acc-2-paid-later"], "b-2-late", statement="2026-02-10", due="2026-03-01", settled_on="2026-05-01"
                ),
                bill(a["acc-3"], "b-3", statement="2026-02-08", due="2026-02-28"),
                bill(
                    a["acc-6-charged-later"],
                    "b-6",
                    statement="2025-10-10",
                    due="2025-11-01",
                    charged_off_on="2026-05-01",
                ),
                bill(a["acc-7"], "b-7", statement="2025-09-10", due="2025-10-01"),
                bill(a["acc-g"], "b-g", statement="2025-09-15", due="2025-10-07", charged_off_on="2026-04-05"),
                bill(a["acc-r"], "b-r", statement="2026-02-10", due="2026-03-01", plan_id="plan-r"),
                plan(a["acc-r"], "plan-r", activated_on="2026-04-10"),
                bill(a["acc-r-later"], "b-r-later", statement="2026-02-10", due="2026-03-01", plan_id="plan-r-later"),
                plan(a["acc-r-later"], "plan-r-later", activated_on="2026-05-01"),
                bill(
                    a["acc-plan-done"],
                    "b-plan-done",
                    statement="2025-12-10",
                    due="2026-01-01",
                    plan_id="plan-done",
                    settled_on="2026-03-20",
                ),
                plan(
                    a["acc-plan-done"],
                    "plan-done",
                    activated_on="2026-01-10",
                    status="completed",
                    ended_on="2026-03-20",
                ),
                bill(a["acc-c"], "b-c", statement="2026-03-10", due="2026-04-01", settled_on="2026-04-20"),
                restriction(a["acc-c"], "closed", added_on="2026-04-15"),
                bill(
                    a["acc-c-after-g"],
                    "b-c-g",
                    statement="2025-06-10",
                    due="2025-07-01",
                    charged_off_on="2025-12-28",
                    settled_on="2026-04-02",
                ),
                restriction(a["acc-c-after-g"], "closed", added_on="2025-09-30"),
                bill(
                    a["acc-closed-owing"],
                    "b-closed-owing",
                    statement="2026-04-05",
                    due="2026-04-25",
                    settled_on="2026-05-01",
                ),
                purchase(a["acc-closed-unbilled"], "p-unbilled", posted_on="2026-04-20", bill_id="b-unbilled"),
                bill(
                    a["acc-closed-unbilled"],
                    "b-unbilled",
                    statement="2026-05-01",
                    due="2026-05-20",
                    settled_on="2026-05-02",
                ),
                restriction(a["acc-closed-later"], "closed", added_on="2026-05-01"),
                bill(
                    a["acc-2-unnoticed"],
                    "b-2-unnoticed",
                    statement="2026-02-25",
                    due="2026-03-15",
                    report_notice_on=None,
                    report_notice_channel=None,
                    bureau_marked_on=date(2026, 3, 19),
                ),
                bill(
                    a["acc-2-noticed-may"],
                    "b-2-noticed-may",
                    statement="2026-02-25",
                    due="2026-03-15",
                    report_notice_on=date(2026, 5, 1),
                    bureau_marked_on=date(2026, 3, 19),
                ),
                bill(
                    a["acc-2-noticed-04-30"],
                    "b-2-noticed-04-30",
                    statement="2026-02-25",
                    due="2026-03-15",
                    report_notice_on=date(2026, 4, 30),
                    report_notice_channel="letter",
                ),
                bill(
                    a["acc-g-unnoticed"],
                    "b-g-unnoticed",
                    statement="2025-09-15",
                    due="2025-10-07",
                    charged_off_on="2026-04-05",
                    report_notice_on=None,
                    report_notice_channel=None,
                ),
            ]
        )
        s.flush()
        s.add_all(
            [  # bureau marks: settled 5 years ago to the day, a day short, a leap day, unsettled
                mark(a["acc-7"], 9001, marked_on="2016-01-05", settled_on="2021-04-30"),
                mark(a["acc-7"], 9002, marked_on="2016-01-05", settled_on="2021-05-01"),
                mark(a["acc-7"], 9003, marked_on="2016-01-05", settled_on="2021-05-02"),
                mark(a["acc-7"], 9004, marked_on="2015-01-05", settled_on="2020-02-29"),
                mark(a["acc-7"], 9005, marked_on="2025-10-05", settled_on=None),
            ]
        )


@pytest.fixture(scope="module")
def db(accounts_db: AccountsDb) -> AccountsDb:
    _populate(accounts_db)
    return accounts_db


def _ctx(db: AccountsDb, data_dir: Path, day: str) -> JobContext:
    business_date = date.fromisoformat(day)
    return JobContext(
        service="accounts",
        job="credit-report",
        business_date=business_date,
        at="02:00",
        engine=db.engine,
        outbox=Outbox(BUS.outbox),
        rules=ProductRules(),
        clock=FixedClock(datetime.combine(business_date, datetime.min.time().replace(hour=2), tzinfo=SHANGHAI)),
        settings=Settings(data_dir=data_dir, accounts_db_url=db.url),
    )


def _run(ctx: JobContext) -> tuple[JobResult, int]:
    """Run the job as the task wrapper would, following continuations; (result, slices)."""
    result, slices = credit_report(ctx), 1
    while result.more:
        ctx.state = result.state
        result, slices = credit_report(ctx), slices + 1
    return result, slices


def _events(db: AccountsDb, month: str) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(BUS.outbox.c.aggregate_id, BUS.outbox.c.payload, BUS.outbox.c.occurred_at).where(
                BUS.outbox.c.type == "credit.report.generated", BUS.outbox.c.aggregate_id == f"credit-report-{month}"
            )
        ).all()
    return [{"aggregate_id": a, "payload": json.loads(p), "occurred_at": o} for a, p, o in rows]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_april_report_codes_files_event_and_purge(db: AccountsDb, tmp_path: Path) -> None:
    result, _ = _run(_ctx(db, tmp_path, "2026-05-01"))

    summary = result.summary
    report_dir = tmp_path.resolve() / "credit-reports"
    assert summary["month"] == "2026-04"
    assert summary["path"] == str(report_dir / "credit-report-2026-04.csv")
    assert summary["accounts"] == len(EXPECTED_APRIL)
    lines = _csv(report_dir / "credit-report-2026-04.csv")
    assert {row["account_id"]: row["status"] for row in lines} == EXPECTED_APRIL
    assert list(lines[0]) == ["account_id", "status", "max_dpd"]  # nothing personal in the file
    by_id = {row["account_id"]: int(row["max_dpd"]) for row in lines}
    boundaries = (by_id["acc-1"], by_id["acc-2-paid-later"], by_id["acc-3"], by_id["acc-6-charged-later"])
    assert boundaries == (10, 60, 61, 180)

    document = json.loads((report_dir / "credit-report-2026-04.json").read_text(encoding="utf-8"))
    assert document["month"] == "2026-04" and document["month_end"] == "2026-04-30"
    assert document["accounts"] == len(EXPECTED_APRIL)
    assert [(x["account_id"], x["status"]) for x in document["lines"]] == [
        (row["account_id"], row["status"]) for row in lines
    ]
    assert document["status_counts"] == summary["status_counts"]
    assert summary["status_counts"] == {"1": 2, "2": 4, "3": 1, "6": 1, "7": 1, "C": 2, "G": 1, "N": 9, "R": 1}
    max_dpd = {row["account_id"]: row["max_dpd"] for row in lines}
    assert (max_dpd["acc-2-unnoticed"], max_dpd["acc-2-noticed-may"], max_dpd["acc-2-noticed-04-30"]) == (
        "0",
        "0",
        "46",
    )
    assert not list(report_dir.glob("*.partial"))

    (event,) = _events(db, "2026-04")
    assert event["aggregate_id"] == "credit-report-2026-04"
    assert event["payload"] == {"month": "2026-04", "accounts": len(EXPECTED_APRIL), "path": summary["path"]}
    with transaction(db.engine) as s:
        run = s.get(CreditReportRun, "2026-04")
        assert run is not None and (run.accounts, run.generated_on) == (len(EXPECTED_APRIL), date(2026, 5, 1))
        remaining = set(s.scalars(select(BureauMark.bill_pk)).all())
    # settled 2021-04-30 and 2021-05-01 (5 years to the day) and the leap day 2020: purged
    assert summary["marks_purged"] == 3
    assert remaining == {9003, 9005}


def test_a_generated_month_is_not_generated_again(db: AccountsDb, tmp_path: Path) -> None:
    _run(_ctx(db, tmp_path / "first", "2026-05-01"))  # generated here, or already by an earlier test
    again, slices = _run(_ctx(db, tmp_path / "again", "2026-05-01"))
    assert slices == 1
    assert again.summary["already_generated"] is True
    assert (again.summary["month"], again.summary["accounts"]) == ("2026-04", len(EXPECTED_APRIL))
    assert again.summary["marks_purged"] == 0
    assert not (tmp_path / "again").exists()  # no file rewritten
    assert len(_events(db, "2026-04")) == 1  # no second announcement


def test_chunked_slices_write_each_account_once(
    db: AccountsDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiny chunks force continuations; a redelivered slice (same state twice) must not
    duplicate lines. May includes the account opened on 05-01."""
    monkeypatch.setattr(job, "CHUNK_ACCOUNTS", 3)
    monkeypatch.setattr(job, "CHUNKS_PER_SLICE", 2)
    ctx = _ctx(db, tmp_path, "2026-06-01")
    result = credit_report(ctx)
    assert result.more
    ctx.state = result.state
    credit_report(ctx)  # a slice whose task was redelivered: runs again from the same state
    result, slices = _run(ctx)
    assert slices >= 2 and result.summary["month"] == "2026-05"
    lines = _csv(Path(result.summary["path"]))
    ids = [row["account_id"] for row in lines]
    assert len(ids) == len(set(ids)) == len(EXPECTED_APRIL) + 1 == result.summary["accounts"]
    assert NOT_YET_OPEN in ids
    document = json.loads(Path(result.summary["json_path"]).read_text(encoding="utf-8"))
    assert [x["account_id"] for x in document["lines"]] == ids
    statuses = {row["account_id"]: row["status"] for row in lines}
    # by the end of May: paid, closed-and-paid, charged off
    assert (
        statuses["acc-2-paid-later"],
        statuses["acc-closed-owing"],
        statuses["acc-6-charged-later"],
        statuses["acc-closed-unbilled"],
        statuses[NOT_YET_OPEN],
    ) == ("N", "C", "G", "C", "N")


@pytest.mark.parametrize(
    ("today", "cutoff"),
    [
        ("2026-05-01", "2021-05-01"),
        ("2025-02-28", "2020-02-29"),  # the leap day's marks go on 28 February
        ("2024-02-29", "2019-02-28"),
        ("2026-03-01", "2021-03-01"),
    ],
)
def test_purge_cutoff_follows_the_domain_rule(today: str, cutoff: str) -> None:
    assert purge_cutoff(date.fromisoformat(today), CreditReportRules()) == date.fromisoformat(cutoff)
