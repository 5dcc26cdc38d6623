"""The daily close for business date T (RULES section 2), set-based and chunked.

For each chunk of accounts (a range of their dense integer keys), in ONE
transaction:

1. accrual: one ``INSERT … SELECT`` computes, for every bill with due date < T
   and unpaid principal, the day's penalty interest (round(unpaid × 0.05%)) and,
   at DPD 4, the late fee, both clipped to the 24% cap, into ``daily_accruals``;
2. the ledger: the matching double entries, set-based, from those rows;
3. bills: charges added, DPD, overdue detection, bureau mark at DPD 4 and
   charge-off at DPD 180, each a single ``UPDATE``;
4. the lock ladder for the chunk's delinquent or restricted accounts (the pure
   rule of ``domain/lock_ladder.py`` on plain rows, written back with one
   executemany);
5. events into the outbox: ``bill.overdue``, ``bill.charged_off``,
   ``account.restrictions.changed``, ``account.cured`` and one
   ``account.delinquency.updated`` per delinquent account.

A chunk records the date's progress (the next chunk, the figures so far) in the date's
``job_runs`` row in its own transaction (``JobLease.record``), and the next chunk starts
from the progress recorded: a slice delivered again after its worker died goes on from
the last chunk committed, with that chunk's figures counted once. Every bill statement
is also guarded by ``last_closed_on < T``. After the last chunk:
linked accounts of the same identity, ``daily.close.completed``, and the date
is marked done. Missed dates are closed first, in order; a lease on the date's
``job_runs`` row keeps two closes of one date from running at once.

Its length: the chunk's steps share one transaction and one set of locked accounts, so
they stay side by side in the order they run.
"""

from __future__ import annotations

import functools
import sqlite3
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Date,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from services.accounts.domain.ledger import late_fee_charged, penalty_accrued
from services.accounts.domain.lock_ladder import ladder_level
from services.accounts.job_lease import JobLease, LeaseHeld, last_done
from services.accounts.ledger_book import post
from services.accounts.domain.ledger import charged_off as charge_off_posting
from services.accounts.models import BUS, Account, Bill, BureauMark, DailyAccrual, LedgerEntry
from services.accounts.disputes import service_level_alerts
from services.accounts.pauses import due_resumptions, resume_paused
from services.accounts.restrictions import ACCOUNT_COLUMNS, RestrictionWriter, account_row, relink_identities
from shared.bus.outbox import PendingEvent
from shared.db import is_postgres, transaction
from shared.job_runs import UNITS
from shared.jobs import JobContext, JobResult
from shared.log import get_logger
from shared.money import fen_str, from_fen
from shared.rules import ProductRules

log = get_logger(__name__)

JOB = "daily-close"
CHUNK_ACCOUNTS = 25_000
SLICE_SECONDS = 25.0

bills = Bill.__table__
accounts = Account.__table__
accruals = DailyAccrual.__table__


def _ratio(rate: Decimal) -> tuple[int, int]:
    numerator, denominator = rate.as_integer_ratio()
    return numerator, denominator


def _round_rate(fen_column: Any, rate: Decimal) -> Any:
    """round_half_up(fen × rate) in integer SQL: (2·x·n + d) // (2·d), for x ≥ 0."""
    n, d = _ratio(rate)
    return (fen_column * (2 * n) + d) // (2 * d)


def _least(a: Any, b: Any) -> Any:
    return case((a < b, a), else_=b)


def _not_below_zero(x: Any) -> Any:
    return case((x > 0, x), else_=0)


def _paused_accounts(day: date, lo: int, hi: int) -> Any:
    """The chunk's accounts the close of ``day`` leaves alone (``domain.pauses.paused_for_close``)."""
    return select(accounts.c.pk).where(accounts.c.pk >= lo, accounts.c.pk < hi, accounts.c.paused_on < day)


def _eligible(day: date, lo: int, hi: int, rules: ProductRules) -> Any:
    """Bills this close judges: past due, principal unpaid beyond the arrears tolerance, not
    in a plan, not yet closed for T, their account not paused."""
    return and_(
        bills.c.account_pk >= lo,
        bills.c.account_pk < hi,
        bills.c.due_ordinal < day.toordinal(),
        _in_arrears(rules),
        bills.c.account_pk.not_in(_paused_accounts(day, lo, hi)),
        bills.c.plan_id.is_(None),
        or_(bills.c.last_closed_on.is_(None), bills.c.last_closed_on < day),
    )


def _collectable() -> Any:
    """``disputes.collectable`` in SQL: the unpaid principal less what open disputes set aside."""
    return _not_below_zero(bills.c.unpaid_principal_fen - bills.c.disputed_fen)


def _in_arrears(rules: ProductRules) -> Any:
    """``overdue.in_arrears`` in SQL: collectable principal beyond the arrears tolerance (the
    unpaid principal's own test first, implied by it, keeps the partial index on unpaid bills)."""
    tolerance = rules.overdue.arrears_tolerance_fen
    return and_(bills.c.unpaid_principal_fen > tolerance, _collectable() > tolerance)


# -- steps 1 and 2: accrual and its ledger entries -----------------------------------------


def _lock_accounts_to_charge(session: Session, day: date, lo: int, hi: int, rules: ProductRules) -> None:
    """Lock the chunk's accounts that have bills to charge (pk order, as the consumer locks
    accounts) before the accrual reads those bills.

    The accrual reads the bills in one statement and ``_update_bills`` writes them in a
    later one; on PostgreSQL (READ COMMITTED) each statement sees what has committed by
    then. A repayment or plan activation committed in between left an accrual and its
    ledger posting with no charge on the bill (two simulation runs differed by exactly
    that). Every handler that changes a bill locks its account first, so with these locks
    held the chunk's bills stay as the accrual read them until the chunk commits: a payment
    arriving meanwhile waits, then pays what the close charged. (SQLite takes one writer
    at a time: nothing commits in between there.) A deadlock with a consumer batch, which
    locks accounts run by run, costs one side a retry: the consumer retries its batch, the
    job its slice (``shared/jobs.py``, ``run_slice``)."""
    if not is_postgres(session):  # SQLite renders no FOR UPDATE: the select would only cost a query
        return
    to_charge = select(bills.c.account_pk).where(_eligible(day, lo, hi, rules))
    session.execute(
        select(accounts.c.pk).where(accounts.c.pk.in_(to_charge)).order_by(accounts.c.pk).with_for_update(of=accounts)
    )


def _accrue(session: Session, day: date, lo: int, hi: int, rules: ProductRules) -> None:
    overdue = rules.overdue
    dpd = day.toordinal() - bills.c.due_ordinal
    room = bills.c.charge_cap_fen - bills.c.penalty_charged_fen - bills.c.late_fee_charged_fen
    basis = _collectable()
    penalty = _not_below_zero(_least(_round_rate(basis, overdue.penalty_daily_rate), room))
    raw_fee = _least(_round_rate(basis, overdue.late_fee_rate), int(overdue.late_fee_max * 100))
    fee = case(
        (
            and_(dpd == overdue.late_fee_dpd, bills.c.late_fee_charged_fen == 0),
            _not_below_zero(_least(raw_fee, room - penalty)),
        ),
        else_=0,
    )
    select_accruals = select(bills.c.pk, literal(day), bills.c.account_pk, basis, penalty, fee).where(
        _eligible(day, lo, hi, rules), bills.c.charged_off_on.is_(None)
    )
    session.execute(
        insert(accruals).from_select(
            ["bill_pk", "business_date", "account_pk", "basis_fen", "penalty_fen", "late_fee_fen"], select_accruals
        )
    )
    _post_accruals(session, day, lo, hi)


def _post_accruals(session: Session, day: date, lo: int, hi: int) -> None:
    """The double entries of today's accruals in ONE statement: each accrual row meets the
    four posting lines (penalty debit and credit, late fee debit and credit); zero lines drop."""
    ledger = LedgerEntry.__table__
    lines = union_all(
        *[
            select(
                literal(component).label("component"),
                literal(str(line.account)).label("ledger_account"),
                literal(1 if line.debit > 0 else 0).label("is_debit"),
                literal(posting.memo).label("kind"),
            )
            for component, posting in (
                ("penalty", penalty_accrued(Decimal("0.01"))),
                ("late_fee", late_fee_charged(Decimal("0.01"))),
            )
            for line in posting.lines
        ]
    ).subquery("posting_lines")
    amount = case((lines.c.component == "penalty", accruals.c.penalty_fen), else_=accruals.c.late_fee_fen)
    posting_id = literal(f"close:{day.isoformat()}:") + cast(accruals.c.bill_pk, String) + literal(":") + lines.c.kind
    session.execute(
        insert(ledger).from_select(
            [
                "posting_id",
                "account_pk",
                "bill_pk",
                "business_date",
                "ledger_account",
                "debit_fen",
                "credit_fen",
                "kind",
            ],
            select(
                posting_id,
                accruals.c.account_pk,
                accruals.c.bill_pk,
                literal(day),
                lines.c.ledger_account,
                case((lines.c.is_debit == 1, amount), else_=0),
                case((lines.c.is_debit == 0, amount), else_=0),
                lines.c.kind,
            )
            .select_from(accruals.join(lines, literal(True)))
            .where(
                accruals.c.business_date == day, accruals.c.account_pk >= lo, accruals.c.account_pk < hi, amount > 0
            ),
        )
    )


# -- step 3: the bills ------------------------------------------------------------------------


def _update_bills(session: Session, day: date, lo: int, hi: int, rules: ProductRules) -> None:
    """One UPDATE per bill row: today's charges from its accrual, DPD, flags, the close stamp.
    (Charged-off bills accrue nothing and get the second, much smaller UPDATE.)"""
    dpd = day.toordinal() - bills.c.due_ordinal
    flags = {
        "dpd": dpd,
        "overdue_since": func.coalesce(bills.c.overdue_since, day),
        "bureau_marked_on": case(
            (and_(bills.c.bureau_marked_on.is_(None), dpd >= rules.credit_report.mark_dpd), day),
            else_=bills.c.bureau_marked_on,
        ),
        "charged_off_on": case(
            (and_(bills.c.charged_off_on.is_(None), dpd >= rules.overdue.charge_off_dpd), day),
            else_=bills.c.charged_off_on,
        ),
        "last_closed_on": day,
    }
    session.execute(
        update(bills)
        .where(
            _eligible(day, lo, hi, rules),
            accruals.c.bill_pk == bills.c.pk,
            accruals.c.business_date == day,
        )
        .values(
            penalty_charged_fen=bills.c.penalty_charged_fen + accruals.c.penalty_fen,
            unpaid_penalty_fen=bills.c.unpaid_penalty_fen + accruals.c.penalty_fen,
            late_fee_charged_fen=bills.c.late_fee_charged_fen + accruals.c.late_fee_fen,
            unpaid_late_fee_fen=bills.c.unpaid_late_fee_fen + accruals.c.late_fee_fen,
            **flags,
        )
    )
    session.execute(
        update(bills).where(_eligible(day, lo, hi, rules), bills.c.charged_off_on.isnot(None)).values(**flags)
    )


def _bureau_marks(session: Session, day: date, lo: int, hi: int) -> None:
    session.execute(
        insert(BureauMark.__table__).from_select(
            ["account_pk", "bill_pk", "marked_on"],
            select(bills.c.account_pk, bills.c.pk, bills.c.bureau_marked_on).where(
                bills.c.account_pk >= lo,
                bills.c.account_pk < hi,
                bills.c.unpaid_principal_fen > 0,
                bills.c.bureau_marked_on == day,
            ),
        )
    )


def _charge_offs(session: Session, day: date, lo: int, hi: int, occurred_at: Any) -> list[PendingEvent]:
    """Write off the bills that reached DPD 180 today (few a day: one posting each)."""
    rows = session.execute(
        select(
            bills.c.pk,
            bills.c.bill_id,
            bills.c.account_pk,
            accounts.c.account_id,
            bills.c.unpaid_principal_fen,
            bills.c.unpaid_penalty_fen,
            bills.c.unpaid_late_fee_fen,
        )
        .join(accounts, accounts.c.pk == bills.c.account_pk)
        .where(
            bills.c.account_pk >= lo,
            bills.c.account_pk < hi,
            bills.c.unpaid_principal_fen > 0,
            bills.c.charged_off_on == day,
            bills.c.written_off_fen == 0,
        )
    ).all()
    events = []
    for pk, bill_id, account_pk, account_id, principal, penalty, fee in rows:
        total = principal + penalty + fee
        post(
            session,
            charge_off_posting(from_fen(principal), from_fen(penalty), from_fen(fee)),
            account_pk=account_pk,
            bill_pk=pk,
            business_date=day,
            posting_id=f"charge_off:{bill_id}",
        )
        session.execute(update(bills).where(bills.c.pk == pk).values(written_off_fen=total))
        events.append(
            PendingEvent(
                "bill.charged_off",
                account_id,
                {
                    "bill_id": bill_id,
                    "account_id": account_id,
                    "business_date": day.isoformat(),
                    "amount": fen_str(total),
                },
                occurred_at,
            )
        )
    return events


def _overdue_events(session: Session, day: date, lo: int, hi: int, occurred_at: Any) -> list[PendingEvent]:
    rows = session.execute(
        select(bills.c.bill_id, accounts.c.account_id, bills.c.due_date, bills.c.dpd, bills.c.unpaid_principal_fen)
        .join(accounts, accounts.c.pk == bills.c.account_pk)
        .where(
            bills.c.account_pk >= lo,
            bills.c.account_pk < hi,
            bills.c.unpaid_principal_fen > 0,
            bills.c.overdue_since == day,
            bills.c.last_closed_on == day,
        )
    ).all()
    return [
        PendingEvent(
            "bill.overdue",
            account_id,
            {
                "bill_id": bill_id,
                "account_id": account_id,
                "due_date": due.isoformat(),
                "business_date": day.isoformat(),
                "dpd": dpd,
                "unpaid_principal": fen_str(unpaid),
            },
            occurred_at,
        )
        for bill_id, account_id, due, dpd, unpaid in rows
    ]


# -- steps 4 and 5: the lock ladder and the delinquency snapshot ------------------------------


def _worst_dpd(day: date, lo: int, hi: int, rules: ProductRules) -> Any:
    """Per delinquent account of the chunk: its maximum DPD."""
    return (
        select(bills.c.account_pk, func.max(bills.c.dpd).label("dpd"))
        .where(
            bills.c.account_pk >= lo,
            bills.c.account_pk < hi,
            _in_arrears(rules),
            bills.c.due_ordinal < day.toordinal(),
            bills.c.plan_id.is_(None),
            bills.c.account_pk.not_in(_paused_accounts(day, lo, hi)),
        )
        .group_by(bills.c.account_pk)
        .subquery("worst")
    )


def _ladder(session: Session, day: date, lo: int, hi: int, writer: RestrictionWriter, rules: ProductRules) -> int:
    """Run the ladder for every account that is delinquent or carries a measure.

    Tonight's maximum DPD and last overdue date of every delinquent account are
    written by one set-based UPDATE that also returns those accounts; the pure
    ladder rule then runs only for the accounts whose measures may change (a new
    threshold, a cure, a plan, a limit to restore), on a normal night a small
    share of them. Returns how many accounts are delinquent.
    """
    worst = _worst_dpd(day, lo, hi, rules)
    delinquent = session.execute(
        update(accounts)
        .where(accounts.c.pk == worst.c.account_pk)
        .values(max_dpd=worst.c.dpd, last_overdue_on=day)
        .returning(*ACCOUNT_COLUMNS, accounts.c.max_dpd)
    ).all()
    watched = session.execute(
        select(*ACCOUNT_COLUMNS, literal(0)).where(
            accounts.c.pk >= lo,
            accounts.c.pk < hi,
            or_(accounts.c.last_overdue_on.is_(None), accounts.c.last_overdue_on < day),
            or_(accounts.c.paused_on.is_(None), accounts.c.paused_on >= day),  # a pause keeps the measures
            or_(
                accounts.c.level > 0,
                accounts.c.limit_cut.is_(True),
                accounts.c.active_plan_id.isnot(None),
                accounts.c.linked_level > 0,
                accounts.c.max_dpd > 0,
            ),
        )
    ).all()
    for raw in [*delinquent, *watched]:
        row = account_row(raw)
        max_dpd = int(raw[-1] or 0)
        if not _measures_hold(row, max_dpd, writer.rules):
            writer.decide(row, max_dpd)
    return len(delinquent)


def _measures_hold(row: Any, max_dpd: int, rules: Any) -> bool:
    """Still overdue at the same ladder level with its measures in place: nothing to change
    (tonight's DPD and last overdue date were already written set-based)."""
    level = ladder_level(max_dpd, rules)
    return (
        max_dpd >= 1
        and level == row.level
        and row.active_plan_id is None
        and (level < 2 or row.limit_cut)
        and (level < 4 or row.status == "closed")
    )


def _money_sql(fen: str) -> str:
    """Integer fen (>= 0) as the wire's decimal string, in SQL that both databases speak
    (PostgreSQL's sum() of a bigint is numeric: cast back)."""
    whole = f"CAST(CAST({fen} AS BIGINT) / 100 AS TEXT)"
    cents = f"substr(CAST(100 + CAST({fen} AS BIGINT) % 100 AS TEXT), 2)"
    return f"({whole} || '.' || {cents})"


# The few functions the two databases spell differently; the statement is one.
_SPELLINGS = {
    "postgresql": {
        "object": "json_build_object",
        "as_json": "",
        "date": "to_char({}, 'YYYY-MM-DD')",
        "array": "json_agg({} ORDER BY b.due_date, b.bill_id)",
        "text": "CAST({} AS TEXT)",
        "uuid": "CAST(gen_random_uuid() AS TEXT)",
    },
    "sqlite": {
        "object": "json_object",
        "as_json": "json",
        "date": "{}",
        "text": "{}",
        # before 3.44 an aggregate takes no ORDER BY: the ordered subquery feeds it in order
        "array": (
            "json_group_array({} ORDER BY b.due_date, b.bill_id)"
            if sqlite3.sqlite_version_info >= (3, 44)
            else "json_group_array({})"
        ),
        "uuid": (
            "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)"
            " || '-' || substr('89ab', 1 + abs(random()) % 4, 1) || substr(hex(randomblob(2)), 2) || '-'"
            " || hex(randomblob(6)))"
        ),
    },
}


# ``_collectable`` as the snapshot's text SQL spells it: disputed principal is not collected.
_COLLECTABLE_SQL = (
    "CASE WHEN bills.unpaid_principal_fen > bills.disputed_fen"
    " THEN bills.unpaid_principal_fen - bills.disputed_fen ELSE 0 END"
)


@functools.cache
def _delinquency_sql(dialect: str) -> Any:
    """``account.delinquency.updated`` for every delinquent account of a chunk, built by the
    database and written straight into the outbox: its overdue bills outside a plan (by due
    date, then id), their sums and its maximum DPD. One statement for PostgreSQL and SQLite
    (``_SPELLINGS``); the event id is drawn once per snapshot (a materialized CTE) and is its
    correlation id too, as for any event that starts a chain."""
    say = _SPELLINGS[dialect]
    bill = (
        f"{say['object']}('bill_id', b.bill_id, 'due_date', {say['date'].format('b.due_date')}, 'dpd', b.dpd,"
        f" 'unpaid_principal', {_money_sql('b.unpaid_principal_fen')},"
        f" 'penalty_interest', {_money_sql('b.unpaid_penalty_fen')},"
        f" 'late_fee', {_money_sql('b.unpaid_late_fee_fen')})"
    )
    payload = (
        f"{say['object']}('account_id', g.account_id, 'business_date', CAST(:business_date AS TEXT),"
        f" 'max_dpd', g.max_dpd, 'overdue_principal', {_money_sql('g.principal')},"
        f" 'penalty_interest', {_money_sql('g.penalty')}, 'late_fees', {_money_sql('g.fees')},"
        f" 'total_overdue', {_money_sql('g.principal + g.penalty + g.fees')},"
        f" 'bills', {say['as_json']}(g.bills))"
    )
    sql = f"""
WITH snapshots AS MATERIALIZED (
  SELECT {say["uuid"]} AS event_id, g.account_id, {say["text"].format(payload)} AS payload
  FROM (
    SELECT b.account_pk, max(b.account_id) AS account_id, max(b.dpd) AS max_dpd, sum(b.unpaid_principal_fen) AS principal,
           sum(b.unpaid_penalty_fen) AS penalty, sum(b.unpaid_late_fee_fen) AS fees,
           {say["array"].format(bill)} AS bills
    FROM (
      SELECT bills.account_pk, accounts.account_id, bills.bill_id, bills.due_date, bills.dpd,
             {_COLLECTABLE_SQL} AS unpaid_principal_fen, bills.unpaid_penalty_fen, bills.unpaid_late_fee_fen
      FROM bills JOIN accounts ON accounts.pk = bills.account_pk
      WHERE bills.account_pk >= :lo AND bills.account_pk < :hi AND bills.due_ordinal < :ordinal
        AND {_COLLECTABLE_SQL} > :tolerance AND bills.plan_id IS NULL
        AND (accounts.paused_on IS NULL OR accounts.paused_on >= :close_day)
      ORDER BY bills.account_pk, bills.due_date, bills.bill_id
    ) b
    GROUP BY b.account_pk
  ) g
  ORDER BY g.account_pk
)
INSERT INTO outbox (event_id, type, aggregate_id, payload, occurred_at, correlation_id)
SELECT event_id, 'account.delinquency.updated', account_id, payload, :occurred_at, event_id FROM snapshots
"""
    return text(sql).bindparams(
        bindparam("occurred_at", type_=BUS.outbox.c.occurred_at.type), bindparam("close_day", type_=Date)
    )


def _emit_delinquency(session: Session, day: date, lo: int, hi: int, occurred_at: Any, rules: ProductRules) -> None:
    session.execute(
        _delinquency_sql(session.get_bind().dialect.name),
        {
            "occurred_at": occurred_at,
            "business_date": day.isoformat(),
            "lo": lo,
            "hi": hi,
            "ordinal": day.toordinal(),
            "tolerance": rules.overdue.arrears_tolerance_fen,
            "close_day": day,
        },
    )


# -- one chunk, one day, the job ---------------------------------------------------------------


def close_chunk(session: Session, ctx: JobContext, day: date, lo: int, hi: int) -> dict[str, int]:
    """Close date ``day`` for accounts with lo <= pk < hi, in the caller's transaction.

    The caller records the date's progress in the same transaction (``daily_close``), so
    a chunk is closed once per date.
    """
    rules = ctx.rules
    occurred_at = ctx.clock.now()
    resumed = resume_paused(session, due_resumptions(session, day, lo, hi), occurred_at)
    resumed += service_level_alerts(session, day, lo, hi, rules.disputes.service_level_days, occurred_at)
    _lock_accounts_to_charge(session, day, lo, hi, rules)
    _accrue(session, day, lo, hi, rules)
    penalty = (
        session.scalar(
            select(func.coalesce(func.sum(accruals.c.penalty_fen), 0)).where(
                accruals.c.business_date == day, accruals.c.account_pk >= lo, accruals.c.account_pk < hi
            )
        )
        or 0
    )
    _update_bills(session, day, lo, hi, rules)
    _bureau_marks(session, day, lo, hi)
    events = _charge_offs(session, day, lo, hi, occurred_at) + _overdue_events(session, day, lo, hi, occurred_at)
    writer = RestrictionWriter(session, day, rules.lock_ladder, occurred_at)
    delinquent = _ladder(session, day, lo, hi, writer, rules)
    overdue_bills = (
        session.scalar(
            select(func.count())
            .select_from(bills)
            .where(
                bills.c.account_pk >= lo,
                bills.c.account_pk < hi,
                _in_arrears(rules),
                bills.c.due_ordinal < day.toordinal(),
                bills.c.plan_id.is_(None),
            )
        )
        or 0
    )
    writer.flush()
    ctx.outbox.emit_many(session, resumed + events + writer.events)
    _emit_delinquency(session, day, lo, hi, occurred_at, rules)
    return {
        "bills_overdue": overdue_bills,
        "penalty_accrued_fen": int(penalty),
        "accounts_delinquent": delinquent,
        "events": len(resumed) + len(events) + len(writer.events) + delinquent,
    }


def _finish_day(ctx: JobContext, lease: JobLease, day: date, stats: dict[str, int], started: float) -> dict[str, Any]:
    """Linked accounts, the day's summary event, and the date marked closed."""
    rules = ctx.rules
    with transaction(ctx.engine) as session:
        writer = RestrictionWriter(session, day, rules.lock_ladder, ctx.clock.now())
        linked = relink_identities(session, None, day, rules.lock_ladder, writer)
        writer.flush()
        restricted = session.scalar(select(func.count()).select_from(accounts).where(accounts.c.level > 0)) or 0
        summary = {
            "business_date": day.isoformat(),
            "bills_overdue": stats.get("bills_overdue", 0),
            "penalty_accrued": fen_str(stats.get("penalty_accrued_fen", 0)),
            "accounts_restricted": int(restricted),
            "duration_ms": int((time.monotonic() - started) * 1000) if started else stats.get("duration_ms", 0),
        }
        ctx.outbox.emit_many(
            session,
            writer.events
            + [PendingEvent("daily.close.completed", f"daily-close-{day.isoformat()}", summary, ctx.clock.now())],
        )
        lease.finish(session, day, {**summary, "linked_changed": linked, **stats}, ctx.clock.now())
    return summary


def _run_summary(state: dict[str, Any], last: dict[str, Any]) -> dict[str, Any]:
    """The whole run's summary: the flows (penalty accrued, time taken) added up over the
    dates closed, which are listed; the states (bills overdue, accounts restricted) as
    the last date left them."""
    return {
        "status": "closed",
        "dates_closed": list(state["closed"]),
        "business_date": last["business_date"],
        "bills_overdue": last["bills_overdue"],
        "accounts_restricted": last["accounts_restricted"],
        "penalty_accrued": fen_str(state.get("penalty_fen", 0)),
        "duration_ms": state.get("duration_ms", 0),
    }


def daily_close(ctx: JobContext) -> JobResult:
    """Close every date from the day after the last closed one up to ``ctx.business_date``."""
    target = ctx.business_date
    state = dict(ctx.state)
    lease = JobLease(JOB, state.setdefault("run", ctx.run or uuid.uuid4().hex))
    if "day" not in state:
        with transaction(ctx.engine) as session:
            last = last_done(session, JOB, other_than=state["run"])  # this run's first slice again: as it began
        if last is not None and last >= target:
            return JobResult({"status": "already_closed", "last_closed": last.isoformat()})
        state.update(
            day=(last + timedelta(days=1) if last else target).isoformat(), cursor=0, closed=[], stats={}, elapsed_ms=0
        )
    deadline = time.monotonic() + SLICE_SECONDS
    with transaction(ctx.engine) as session:
        max_pk = int(session.scalar(select(func.coalesce(func.max(accounts.c.pk), 0))) or 0)
    while True:
        day = date.fromisoformat(state["day"])
        with transaction(ctx.engine) as session:
            lease.acquire(session, day, ctx.clock.now())
        day_started = time.monotonic()
        finished: dict[str, Any] | None = None  # the date's summary, when a delivery before this one finished it
        while finished is None and state["cursor"] <= max_pk:
            finished = _close_next_chunk(ctx, lease, day, state)
            log.info(
                "close_progress",
                business_date=day.isoformat(),
                accounts_done=min(state["cursor"], max_pk),
                accounts_total=max_pk,
            )
            state["elapsed_ms"] += int((time.monotonic() - day_started) * 1000)
            day_started = time.monotonic()
            if finished is None and time.monotonic() > deadline and state["cursor"] <= max_pk:
                return JobResult({"status": "in_progress", "business_date": day.isoformat()}, more=True, state=state)
        if finished is None:
            state["stats"]["duration_ms"] = state["elapsed_ms"]
            finished = {**_finish_day(ctx, lease, day, state["stats"], 0), **state["stats"]}
        state["closed"].append(day.isoformat())
        state["penalty_fen"] = state.get("penalty_fen", 0) + int(finished.get("penalty_accrued_fen", 0))
        state["duration_ms"] = state.get("duration_ms", 0) + int(finished.get("duration_ms", 0))
        if day >= target:
            return JobResult(_run_summary(state, finished))
        state.update(
            {"day": (day + timedelta(days=1)).isoformat(), "cursor": 0, "stats": {}, "elapsed_ms": 0, UNITS: 0}
        )
        if time.monotonic() > deadline:
            return JobResult({"status": "in_progress", "business_date": state["day"]}, more=True, state=state)


def _close_next_chunk(ctx: JobContext, lease: JobLease, day: date, state: dict[str, Any]) -> dict[str, Any] | None:
    """Close the chunk the date's progress is at and record the progress with it, in one
    transaction; ``state`` takes the progress (the one committed by a delivery before this
    one when that is ahead: ``JobLease.resume``). Returns the date's summary instead when
    such a delivery already finished the date."""
    with transaction(ctx.engine) as session:
        standing = lease.resume(session, day, {key: state.get(key, 0) for key in ("cursor", "stats", UNITS)})
        if standing.done:
            return standing.progress
        progress = standing.progress
        lo = int(progress["cursor"])
        stats = dict(progress["stats"])
        for key, value in close_chunk(session, ctx, day, lo, lo + CHUNK_ACCOUNTS).items():
            stats[key] = stats.get(key, 0) + value
        state.update(lease.record(session, day, {**progress, "cursor": lo + CHUNK_ACCOUNTS, "stats": stats}))
    return None


__all__ = ["daily_close", "close_chunk", "LeaseHeld"]
