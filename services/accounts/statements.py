"""The statements job (RULES section 1): on statement day S, one bill per account for
every approved, unbilled purchase posted before S, due on the 10th of S's month.

Chunked by account key range; each chunk is one transaction that creates the
bills, stamps the purchases with their bill and writes ``bill.issued``. A chunk
run again finds no unbilled purchase left and does nothing. A credit balance
pays the new bill at once (as a repayment from the balance would).
"""

from __future__ import annotations

import time
import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from services.accounts.domain.billing import due_date_for, statement_dates_between
from services.accounts.domain.overdue import overdue_charge_cap
from services.accounts.job_lease import JobLease, last_done
from services.accounts.models import Account, Bill, Purchase
from services.accounts.repayments import apply_credit_balance
from shared.bus.outbox import PendingEvent
from shared.db import transaction
from shared.job_runs import UNITS
from shared.jobs import JobContext, JobResult
from shared.money import fen_str, from_fen, to_fen

JOB = "statements"
CHUNK_ACCOUNTS = 25_000
SLICE_SECONDS = 25.0

purchases = Purchase.__table__
accounts = Account.__table__


def bill_id_for(account_id: str, statement_date: date) -> str:
    return f"{account_id}-{statement_date.strftime('%Y%m')}"


def issue_chunk(session: Session, ctx: JobContext, statement: date, lo: int, hi: int) -> int:
    """Bill the chunk's unbilled purchases posted before ``statement``; returns bills issued."""
    due = due_date_for(statement, ctx.rules.billing)
    totals = session.execute(
        select(purchases.c.account_pk, accounts.c.account_id, func.sum(purchases.c.amount_fen))
        .join(accounts, accounts.c.pk == purchases.c.account_pk)
        .where(
            purchases.c.account_pk >= lo,
            purchases.c.account_pk < hi,
            purchases.c.bill_id.is_(None),
            purchases.c.posted_on < statement,
        )
        .group_by(purchases.c.account_pk, accounts.c.account_id)
    ).all()
    new_bills = [(pk, account_id, int(total)) for pk, account_id, total in totals if total and total > 0]
    if not new_bills:
        return 0
    session.execute(
        insert(Bill.__table__),
        [
            {
                "bill_id": bill_id_for(account_id, statement),
                "account_pk": pk,
                "statement_date": statement,
                "due_date": due,
                "due_ordinal": due.toordinal(),
                "principal_fen": total,
                "unpaid_principal_fen": total,
                "charge_cap_fen": to_fen(overdue_charge_cap(from_fen(total), ctx.rules.overdue)),
                "unpaid_penalty_fen": 0,
                "unpaid_late_fee_fen": 0,
                "penalty_charged_fen": 0,
                "late_fee_charged_fen": 0,
                "dpd": 0,
                "written_off_fen": 0,
                "origin": "statement",
            }
            for pk, account_id, total in new_bills
        ],
    )
    bill_of_account = (
        select(Bill.bill_id)
        .where(Bill.account_pk == purchases.c.account_pk, Bill.statement_date == statement)
        .scalar_subquery()
    )
    session.execute(
        update(purchases)
        .where(
            purchases.c.account_pk >= lo,
            purchases.c.account_pk < hi,
            purchases.c.bill_id.is_(None),
            purchases.c.posted_on < statement,
        )
        .values(bill_id=bill_of_account)
    )
    now = ctx.clock.now()
    ctx.outbox.emit_many(
        session,
        [
            PendingEvent(
                "bill.issued",
                account_id,
                {
                    "bill_id": bill_id_for(account_id, statement),
                    "account_id": account_id,
                    "statement_date": statement.isoformat(),
                    "due_date": due.isoformat(),
                    "amount": fen_str(total),
                },
                now,
            )
            for _, account_id, total in new_bills
        ],
    )
    _pay_from_credit_balances(session, ctx, [pk for pk, _, _ in new_bills], statement)
    return len(new_bills)


def _pay_from_credit_balances(session: Session, ctx: JobContext, account_pks: list[int], statement: date) -> None:
    holders = session.scalars(select(Account).where(Account.pk.in_(account_pks), Account.credit_balance_fen > 0)).all()
    for account in holders:
        apply_credit_balance(session, ctx.outbox, account, statement, ctx.rules, ctx.clock.now())


def statements(ctx: JobContext) -> JobResult:
    """Issue the bills of every statement date since the last run, up to ``ctx.business_date``."""
    state: dict[str, Any] = dict(ctx.state)
    lease = JobLease(JOB, state.setdefault("run", ctx.run or uuid.uuid4().hex))
    if "pending" not in state:
        with transaction(ctx.engine) as session:
            last = last_done(session, JOB, other_than=state["run"])  # this run's first slice again: as it began
        start = last + timedelta(days=1) if last else ctx.business_date
        dates = statement_dates_between(start, ctx.business_date, ctx.rules.billing)
        state.update(pending=[d.isoformat() for d in dates], cursor=0, issued=0)
        if not dates:
            with transaction(ctx.engine) as session:
                lease.acquire(session, ctx.business_date, ctx.clock.now())
                lease.finish(session, ctx.business_date, {"bills_issued": 0}, ctx.clock.now())
            return JobResult({"status": "no_statement_day", "bills_issued": 0})
    deadline = time.monotonic() + SLICE_SECONDS
    with transaction(ctx.engine) as session:
        max_pk = int(session.scalar(select(func.coalesce(func.max(accounts.c.pk), 0))) or 0)
    while state["pending"]:
        statement = date.fromisoformat(state["pending"][0])
        with transaction(ctx.engine) as session:
            lease.acquire(session, statement, ctx.clock.now())
        finished: dict[str, Any] | None = None  # the date's summary, when a delivery before this one finished it
        while finished is None and state["cursor"] <= max_pk:
            finished = _issue_next_chunk(ctx, lease, statement, state)
            if finished is None and time.monotonic() > deadline and state["cursor"] <= max_pk:
                return JobResult({"status": "in_progress"}, more=True, state=state)
        if finished is None:
            with transaction(ctx.engine) as session:
                lease.finish(session, statement, {"bills_issued": state.get("date_issued", 0)}, ctx.clock.now())
        else:
            state["date_issued"] = int(finished.get("bills_issued", 0))
        state["issued"] += state.get("date_issued", 0)
        state.setdefault("statement_dates", []).append(statement.isoformat())
        state["pending"].pop(0)
        state.update({"cursor": 0, "date_issued": 0, UNITS: 0})
    if ctx.business_date.isoformat() not in state.get("statement_dates", []):  # the date the run is for, done too
        with transaction(ctx.engine) as session:
            lease.acquire(session, ctx.business_date, ctx.clock.now())
            lease.finish(session, ctx.business_date, {"bills_issued": 0}, ctx.clock.now())
    # the run's figures: the bills of every statement date it issued, added up, and those dates
    return JobResult(
        {"status": "issued", "bills_issued": state["issued"], "statement_dates": state.get("statement_dates", [])}
    )


def _issue_next_chunk(
    ctx: JobContext, lease: JobLease, statement: date, state: dict[str, Any]
) -> dict[str, Any] | None:
    """Issue the bills of the chunk the statement date's progress is at and record the
    progress with them, in one transaction; ``state`` takes the progress (the one committed
    by a delivery before this one when that is ahead: ``JobLease.resume``). Returns the
    date's summary instead when such a delivery already finished the date."""
    with transaction(ctx.engine) as session:
        standing = lease.resume(
            session, statement, {key: state.get(key, 0) for key in ("cursor", "date_issued", UNITS)}
        )
        if standing.done:
            return standing.progress
        lo = int(standing.progress["cursor"])
        issued = int(standing.progress["date_issued"]) + issue_chunk(session, ctx, statement, lo, lo + CHUNK_ACCOUNTS)
        state.update(
            lease.record(
                session, statement, {**standing.progress, "cursor": lo + CHUNK_ACCOUNTS, "date_issued": issued}
            )
        )
    return None
