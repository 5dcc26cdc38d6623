"""The monthly credit-report job (RULES section 5): the bureau file and the mark purge.

Run on the 1st for the month before (``report_month(ctx.business_date)``): one line per
account with its status at the month's end, written as CSV and JSON under
``<data_dir>/<credit_report.report_dir>/credit-report-YYYY-MM.{csv,json}``, recorded in
``credit_reports`` and announced by ``credit.report.generated`` in the same transaction.
The same run purges the bureau marks whose debt has been settled for 5 years.

How the month-end status is reconstructed, and why it is an approximation
-------------------------------------------------------------------------
The tables keep current state, not month-end snapshots, so the status is rebuilt from
the dates the tables do keep (``ME`` is the month's last day):

* a bill is *outstanding at ME* when it was issued by ME (``statement_date <= ME``) and
  not settled by then (``settled_on`` NULL or after ME);
* its DPD at ME is ``ME - due_date`` when positive. A bill moved into a plan activated
  by ME no longer counts (RULES 3), nor does a charged-off one (its code is ``G``);
* ``G``: a bill charged off by ME (``charged_off_on <= ME``) and still outstanding;
* ``R``: a plan of the account active at ME (activated by ME, not ended by then);
  "nothing further is reported" while a plan runs, so it wins over any DPD;
* ``C``: the account is closed now and was not closed after ME (a ``closed``
  restriction added after ME), and at ME nothing was owed: no outstanding bill, no
  active plan, no purchase posted by ME and billed only later (or not yet);
* otherwise the DPD bucket, ``N`` when nothing was overdue.

Notice before report: a bill counts for the DPD bucket and for ``G`` only when its
pre-report notice (``bills.report_notice_on``, from ``collection.notice.sent``) is dated
by ME (``overdue_reportable`` in the domain); an unnoticed bill still counts as owed.

What this misses: the DPD uses the full days since due even when the unpaid principal at
ME was later repaid in part (a bill counts as long as it was not *fully* settled by ME),
and a bill settled and reopened cannot be seen. Precedence (C, G, R, DPD) is the
domain's: :func:`services.accounts.domain.credit_report.bureau_status`.

Scale: the statuses come from set-based queries over a chunk of 50,000 accounts by
``pk`` (no ORM object per account); a job slice handles a few chunks and hands the rest
to a continuation (``JobResult.more``), appending to ``.partial`` files whose lengths
travel in the state, so a redelivered slice truncates to them and writes its lines once.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Date, Select, Subquery, and_, case, delete, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from services.accounts.domain.credit_report import bureau_status, marks_to_purge, report_month
from services.accounts.models import (
    Account,
    Bill,
    BureauMark,
    CreditReportRun,
    PlanProjection,
    Purchase,
    RestrictionHistory,
)
from shared.db import transaction
from shared.jobs import JobContext, JobResult
from shared.log import get_logger
from shared.rules import CreditReportRules

log = get_logger(__name__)

CHUNK_ACCOUNTS = 50_000
CHUNKS_PER_SLICE = 4
CSV_HEADER = ("account_id", "status", "max_dpd")
CLOSED_MEASURE = "closed"


@dataclass(frozen=True)
class ReportLine:
    """One account's line: no personal data, only the account id and its codes."""

    account_id: str
    status: str
    max_dpd: int


@dataclass(frozen=True)
class ReportFiles:
    csv: Path
    json: Path

    @property
    def partials(self) -> tuple[Path, Path]:
        return _partial(self.csv), _partial(self.json)


def credit_report(ctx: JobContext) -> JobResult:
    """The credit-report job for ``ctx.business_date`` (normally the 1st of a month)."""
    first, month_end = report_month(ctx.business_date)
    month = first.strftime("%Y-%m")
    with transaction(ctx.engine) as session:
        done = session.get(CreditReportRun, month)
        if done is not None:
            purged = purge_marks(session, ctx.business_date, ctx.rules.credit_report)
            return JobResult(summary=_existing_summary(done, purged))
    files = report_files(ctx, month)
    state = ctx.state or _start(files, month, month_end)
    state = _write_slice(ctx, files, month_end, state)
    if state["next_pk"] is not None:
        return JobResult(summary={"month": month, "accounts_so_far": state["accounts"]}, more=True, state=state)
    return JobResult(summary=_finish(ctx, files, month, state))


def report_files(ctx: JobContext, month: str) -> ReportFiles:
    """Where the month's files go; the directory is created on the way."""
    directory = (Path(ctx.settings.data_dir) / ctx.rules.credit_report.report_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"credit-report-{month}"
    return ReportFiles(csv=stem.with_suffix(".csv"), json=stem.with_suffix(".json"))


# --- month-end statuses, set-based ----------------------------------------------------------


def month_end_lines(
    session: Session, month_end: date, pk_from: int, pk_to: int, tolerance_fen: int = 0
) -> list[ReportLine]:
    """The report lines of the accounts with ``pk_from <= pk < pk_to`` opened by the month end;
    a bill whose unpaid principal is within the arrears tolerance (fen) counts as not overdue."""
    rows = session.execute(_status_query(month_end, pk_from, pk_to, tolerance_fen)).all()
    return [
        ReportLine(
            account_id=row.account_id,
            status=bureau_status(
                month_end_max_dpd=row.max_dpd,
                settled_and_closed=bool(row.closed_at_end) and not row.owed_at_end,
                charged_off=bool(row.charged_off),
                in_active_plan=bool(row.plan_active),
            ),
            max_dpd=row.max_dpd,
        )
        for row in rows
    ]


def _status_query(month_end: date, pk_from: int, pk_to: int, tolerance_fen: int) -> Select[Any]:
    """One row per account: month-end max DPD, charged off, plan active, closed, owed."""
    me = literal(month_end, Date)
    end_ordinal = month_end.toordinal()
    in_chunk = and_(Account.pk >= pk_from, Account.pk < pk_to)
    bills = _bill_facts(month_end, end_ordinal, pk_from, pk_to, tolerance_fen)
    plan_active = exists().where(
        PlanProjection.account_pk == Account.pk,
        PlanProjection.activated_on <= me,
        or_(PlanProjection.ended_on > me, and_(PlanProjection.ended_on.is_(None), PlanProjection.status == "active")),
    )
    closed_later = exists().where(
        RestrictionHistory.account_pk == Account.pk,
        RestrictionHistory.measure == CLOSED_MEASURE,
        RestrictionHistory.added_on > me,
    )
    billed_by_end = select(Bill.pk).where(Bill.bill_id == Purchase.bill_id, Bill.statement_date <= me).exists()
    unbilled_at_end = exists().where(Purchase.account_pk == Account.pk, Purchase.posted_on <= me, ~billed_by_end)
    return (
        select(
            Account.account_id,
            func.coalesce(bills.c.max_dpd, 0).label("max_dpd"),
            func.coalesce(bills.c.charged_off, 0).label("charged_off"),
            plan_active.label("plan_active"),
            and_(Account.status == "closed", ~closed_later).label("closed_at_end"),
            or_(func.coalesce(bills.c.outstanding, 0) > 0, plan_active, unbilled_at_end).label("owed_at_end"),
        )
        .outerjoin(bills, bills.c.account_pk == Account.pk)
        .where(in_chunk, Account.opened_on <= me)
        .order_by(Account.pk)
    )


def _bill_facts(month_end: date, end_ordinal: int, pk_from: int, pk_to: int, tolerance_fen: int) -> Subquery:
    """Per account, over its bills outstanding at the month end: the max DPD of those that
    count, whether one was charged off, how many there were."""
    me = literal(month_end, Date)
    in_plan_by_end = exists().where(PlanProjection.plan_id == Bill.plan_id, PlanProjection.activated_on <= me)
    noticed_by_end = and_(Bill.report_notice_on.is_not(None), Bill.report_notice_on <= me)  # overdue_reportable
    charged_off_by_end = and_(Bill.charged_off_on.is_not(None), Bill.charged_off_on <= me)
    tolerated_by_end = or_(  # rule 2.7: left within the arrears tolerance by the month end, or never above it
        and_(Bill.within_tolerance_on.is_not(None), Bill.within_tolerance_on <= me),
        Bill.principal_fen <= tolerance_fen,
    )
    in_arrears = ~tolerated_by_end
    counts_for_dpd = and_(
        Bill.due_ordinal < end_ordinal, ~charged_off_by_end, ~in_plan_by_end, noticed_by_end, in_arrears
    )
    return (
        select(
            Bill.account_pk,
            func.max(case((counts_for_dpd, end_ordinal - Bill.due_ordinal), else_=0)).label("max_dpd"),
            func.max(case((and_(charged_off_by_end, noticed_by_end), 1), else_=0)).label("charged_off"),
            func.count().label("outstanding"),
        )
        .where(
            Bill.account_pk >= pk_from,
            Bill.account_pk < pk_to,
            Bill.statement_date <= me,
            or_(Bill.settled_on.is_(None), Bill.settled_on > me),
        )
        .group_by(Bill.account_pk)
        .subquery("month_end_bills")
    )


# --- the purge ------------------------------------------------------------------------------


def purge_marks(session: Session, today: date, rules: CreditReportRules) -> int:
    """Delete the marks of debts settled long enough ago (RULES 5: kept 5 years), one
    set-based DELETE on the latest settlement date the domain rule purges today."""
    cutoff = purge_cutoff(today, rules)
    result = session.execute(
        delete(BureauMark).where(BureauMark.settled_on.is_not(None), BureauMark.settled_on <= cutoff)
    )
    return int(result.rowcount or 0)


def purge_cutoff(today: date, rules: CreditReportRules) -> date:
    """The latest settlement date whose marks ``marks_to_purge`` drops today.

    Found from the domain rule itself (so 29 February follows it), starting from the
    calendar guess and stepping by days: at most a couple of steps.
    """
    years = rules.mark_retention_years
    guess = date(today.year - years, today.month, min(today.day, 28))
    while marks_to_purge(guess + timedelta(days=1), today, rules):
        guess += timedelta(days=1)
    while not marks_to_purge(guess, today, rules):
        guess -= timedelta(days=1)
    return guess


# --- files, slices and the run row ----------------------------------------------------------


def _start(files: ReportFiles, month: str, month_end: date) -> dict[str, Any]:
    """Fresh partial files with their headers; the state the slices carry."""
    csv_partial, json_partial = files.partials
    csv_partial.write_text(_csv_row(CSV_HEADER), encoding="utf-8")
    json_partial.write_text(
        '{"month":' + json.dumps(month) + ',"month_end":' + json.dumps(month_end.isoformat()) + ',"lines":[',
        encoding="utf-8",
    )
    return {
        "next_pk": 0,
        "accounts": 0,
        "counts": {},
        "csv_bytes": csv_partial.stat().st_size,
        "json_bytes": json_partial.stat().st_size,
    }


def _write_slice(ctx: JobContext, files: ReportFiles, month_end: date, state: dict[str, Any]) -> dict[str, Any]:
    """Append up to CHUNKS_PER_SLICE chunks of lines; the next pk, or None when done."""
    csv_partial, json_partial = files.partials
    _truncate(csv_partial, state["csv_bytes"])
    _truncate(json_partial, state["json_bytes"])
    accounts, counts = state["accounts"], Counter(state["counts"])
    next_pk: int | None = state["next_pk"]
    with (
        transaction(ctx.engine) as session,
        csv_partial.open("a", encoding="utf-8", newline="") as csv_out,
        json_partial.open("a", encoding="utf-8") as json_out,
    ):
        for pk_from, pk_to in _chunks(session, next_pk, CHUNKS_PER_SLICE):
            lines = month_end_lines(session, month_end, pk_from, pk_to, ctx.rules.overdue.arrears_tolerance_fen)
            csv_out.write("".join(_csv_row((ln.account_id, ln.status, str(ln.max_dpd))) for ln in lines))
            json_out.write("".join(_json_line(ln, first=accounts + i == 0) for i, ln in enumerate(lines)))
            accounts += len(lines)
            counts.update(ln.status for ln in lines)
            next_pk = pk_to
            log.info("credit_report_progress", month_end=month_end.isoformat(), next_pk=pk_to, accounts=accounts)
        next_pk = _remaining(session, next_pk)
    return {
        "next_pk": next_pk,
        "accounts": accounts,
        "counts": dict(counts),
        "csv_bytes": csv_partial.stat().st_size,
        "json_bytes": json_partial.stat().st_size,
    }


def _chunks(session: Session, start_pk: int | None, limit: int) -> Iterator[tuple[int, int]]:
    """Up to ``limit`` pk ranges of CHUNK_ACCOUNTS from ``start_pk``, skipping empty gaps."""
    if start_pk is None:
        return
    for _ in range(limit):
        lowest = session.scalar(select(func.min(Account.pk)).where(Account.pk >= start_pk))
        if lowest is None:
            return
        yield lowest, lowest + CHUNK_ACCOUNTS
        start_pk = lowest + CHUNK_ACCOUNTS


def _remaining(session: Session, next_pk: int | None) -> int | None:
    """``next_pk`` if accounts remain from it, else None (the report is complete)."""
    if next_pk is None:
        return None
    return next_pk if session.scalar(select(Account.pk).where(Account.pk >= next_pk).limit(1)) is not None else None


def _finish(ctx: JobContext, files: ReportFiles, month: str, state: dict[str, Any]) -> dict[str, Any]:
    """Close the JSON, then in one transaction: run row, event, purge; rename the files
    into place before the commit, so a committed run always has its files."""
    csv_partial, json_partial = files.partials
    counts = dict(sorted(state["counts"].items()))
    _truncate(json_partial, state["json_bytes"])
    with json_partial.open("a", encoding="utf-8") as json_out:
        json_out.write('],"accounts":' + str(state["accounts"]) + ',"status_counts":' + json.dumps(counts) + "}")
    with transaction(ctx.engine) as session:
        session.add(
            CreditReportRun(
                month=month, accounts=state["accounts"], path=str(files.csv), generated_on=ctx.business_date
            )
        )
        ctx.outbox.emit(
            session,
            "credit.report.generated",
            {"month": month, "accounts": state["accounts"], "path": str(files.csv)},
            aggregate_id=f"credit-report-{month}",
            occurred_at=ctx.clock.now(),
        )
        purged = purge_marks(session, ctx.business_date, ctx.rules.credit_report)
        session.flush()
        os.replace(csv_partial, files.csv)
        os.replace(json_partial, files.json)
    log.info("credit_report_generated", month=month, accounts=state["accounts"], marks_purged=purged)
    return {
        "month": month,
        "accounts": state["accounts"],
        "path": str(files.csv),
        "json_path": str(files.json),
        "status_counts": counts,
        "marks_purged": purged,
        "already_generated": False,
    }


def _existing_summary(run: CreditReportRun, purged: int) -> dict[str, Any]:
    return {
        "month": run.month,
        "accounts": run.accounts,
        "path": run.path,
        "generated_on": run.generated_on.isoformat(),
        "marks_purged": purged,
        "already_generated": True,
    }


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _truncate(path: Path, size: int) -> None:
    """Drop what a crashed or redelivered slice wrote after the last recorded size."""
    with path.open("r+b") as handle:
        handle.truncate(size)


def _csv_row(values: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _json_line(line: ReportLine, *, first: bool) -> str:
    body = json.dumps(
        {"account_id": line.account_id, "status": line.status, "max_dpd": line.max_dpd},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return body if first else "," + body
