"""The delinquency pause as accounts keeps it (RULES 2.8): an operator's command stops the
account's delinquency clock until it is resumed, by command or at its ``until`` date.

- ``delinquency.pause.requested``: the account is paused from the command's date
  (``delinquency.paused``), its history records the pause; a repeated request id gets
  its first answer again.
- ``delinquency.resume.requested``: the account resumes (``delinquency.resumed``); the
  daily close resumes the accounts whose ``until`` has passed the same way, set-based
  (``resume_paused``), before it closes the date.

What the close leaves alone while an account is paused is ``daily_close``'s business
(``_paused_accounts``); the pure rules are ``domain/pauses.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.orm import Session

from services.accounts.domain.pauses import (
    PAUSED_MEASURE,
    days_not_counted,
    pause_rejection,
    resume_rejection,
    resumed_on,
)
from services.accounts.job_lease import last_done
from services.accounts.models import ANSWERS, Account, Bill, RestrictionHistory
from shared.bus.answers import AnswerBook, repeat
from shared.bus.handling import HandlerContext
from shared.bus.outbox import PendingEvent
from shared.events import payloads as p

PAUSE_ANSWERS = AnswerBook(ANSWERS, "delinquency.pause.requested")
RESUME_ANSWERS = AnswerBook(ANSWERS, "delinquency.resume.requested")


@dataclass(frozen=True)
class Resumption:
    """One paused account to resume: who, from when, through which date, and by whom."""

    pk: int
    account_id: str
    pause_reason: str
    paused_on: date
    resumed_on: date
    resumed_by: str  # operator | until
    request_id: str | None = None
    operator_id: str | None = None


def _locked_account(session: Session, account_id: str) -> Account | None:
    return session.scalar(select(Account).where(Account.account_id == account_id).with_for_update())


def pause_requested(ctx: HandlerContext, event: p.DelinquencyPauseRequested) -> None:
    session = ctx.session
    earlier = PAUSE_ANSWERS.find(session, event.request_id)
    if earlier is not None:
        ctx.outbox.emit_many(session, [repeat(ctx, earlier)])
        return
    account = _locked_account(session, event.account_id)
    today = ctx.event_date
    reason = pause_rejection(account is not None, account.paused_on if account else None, event.until, today)
    if reason is not None:
        rejected = p.DelinquencyPauseRejected(request_id=event.request_id, account_id=event.account_id, reason=reason)
        PAUSE_ANSWERS.answer(
            ctx, event.request_id, [ctx.reply("delinquency.pause.rejected", rejected, event.account_id)]
        )
        return
    assert account is not None
    account.pause_reason, account.paused_on, account.paused_until = event.reason, today, event.until
    account.pause_request_id = event.request_id
    session.add(RestrictionHistory(account_pk=account.pk, measure=PAUSED_MEASURE, cause=event.reason, added_on=today))
    paused = p.DelinquencyPaused(
        request_id=event.request_id,
        account_id=event.account_id,
        reason=event.reason,
        paused_on=today,
        until=event.until,
        operator_id=event.operator_id,
    )
    PAUSE_ANSWERS.answer(ctx, event.request_id, [ctx.reply("delinquency.paused", paused, event.account_id)])


def resume_requested(ctx: HandlerContext, event: p.DelinquencyResumeRequested) -> None:
    session = ctx.session
    earlier = RESUME_ANSWERS.find(session, event.request_id)
    if earlier is not None:
        ctx.outbox.emit_many(session, [repeat(ctx, earlier)])
        return
    account = _locked_account(session, event.account_id)
    reason = resume_rejection(account is not None, account.paused_on if account else None)
    if reason is not None:
        rejected = p.DelinquencyResumeRejected(request_id=event.request_id, account_id=event.account_id, reason=reason)
        answer = ctx.reply("delinquency.resume.rejected", rejected, event.account_id)
        RESUME_ANSWERS.answer(ctx, event.request_id, [answer])
        return
    assert account is not None and account.paused_on is not None and account.pause_reason is not None
    resumption = Resumption(
        pk=account.pk,
        account_id=account.account_id,
        pause_reason=account.pause_reason,
        paused_on=account.paused_on,
        resumed_on=resumed_on(ctx.event_date, last_done(session, "daily-close")),
        resumed_by="operator",
        request_id=event.request_id,
        operator_id=event.operator_id,
    )
    events = resume_paused(session, [resumption], ctx.clock.now())
    session.expire(account)
    replies = [ctx.reply(e.type, e.payload, e.aggregate_id) for e in events]
    RESUME_ANSWERS.answer(ctx, event.request_id, replies)


def due_resumptions(session: Session, day: date, lo: int, hi: int) -> list[Resumption]:
    """The accounts of a close chunk whose pause ended before ``day`` (``until`` < day): the
    close of ``day`` resumes them, their last paused date ``until``."""
    rows = session.execute(
        select(Account.pk, Account.account_id, Account.pause_reason, Account.paused_on, Account.paused_until)
        .where(
            Account.pk >= lo,
            Account.pk < hi,
            Account.paused_on.is_not(None),
            Account.paused_until.is_not(None),
            Account.paused_until < day,
        )
        .order_by(Account.pk)
        .with_for_update()
    ).all()
    return [
        Resumption(pk, account_id, reason, paused_on, until, "until")
        for pk, account_id, reason, paused_on, until in rows
    ]


def resume_paused(session: Session, resumptions: list[Resumption], occurred_at: datetime) -> list[PendingEvent]:
    """Resume the accounts, set-based: each overdue bill's counted due date moves on by the
    paused days after it (``domain.pauses.days_not_counted``), in one executemany; the pause
    is cleared and lifted in the history; one ``delinquency.resumed`` each."""
    if not resumptions:
        return []
    by_pk = {r.pk: r for r in resumptions}
    bills = session.execute(
        select(Bill.pk, Bill.account_pk, Bill.bill_id, Bill.due_ordinal, Bill.dpd)
        .where(Bill.account_pk.in_(sorted(by_pk)), Bill.unpaid_principal_fen > 0, Bill.plan_id.is_(None))
        .order_by(Bill.account_pk, Bill.due_date, Bill.bill_id)
    ).all()
    shifts: list[dict[str, Any]] = []
    listed: dict[int, list[dict[str, Any]]] = {}
    for pk, account_pk, bill_id, due_ordinal, dpd in bills:
        pause = by_pk[account_pk]
        if due_ordinal >= pause.resumed_on.toordinal():
            continue
        days = days_not_counted(pause.paused_on, pause.resumed_on, date.fromordinal(due_ordinal))
        if days:
            shifts.append({"b_pk": pk, "b_days": days})
        listed.setdefault(account_pk, []).append({"bill_id": bill_id, "dpd": dpd, "days_not_counted": days})
    table = Bill.__table__
    if shifts:
        session.connection().execute(
            update(table)
            .where(table.c.pk == bindparam("b_pk"))
            .values(due_ordinal=table.c.due_ordinal + bindparam("b_days")),
            shifts,
        )
    history = RestrictionHistory.__table__
    session.connection().execute(
        update(history)
        .where(
            and_(
                history.c.account_pk == bindparam("b_pk"),
                history.c.measure == PAUSED_MEASURE,
                history.c.lifted_on.is_(None),
            )
        )
        .values(lifted_on=bindparam("b_on")),
        [{"b_pk": r.pk, "b_on": r.resumed_on} for r in resumptions],
    )
    accounts = Account.__table__
    session.execute(
        update(accounts)
        .where(accounts.c.pk.in_(sorted(by_pk)))
        .values(pause_reason=None, paused_on=None, paused_until=None, pause_request_id=None)
    )
    return [
        PendingEvent(
            "delinquency.resumed",
            r.account_id,
            p.DelinquencyResumed(
                request_id=r.request_id,
                account_id=r.account_id,
                pause_reason=r.pause_reason,  # type: ignore[arg-type]
                paused_on=r.paused_on,
                resumed_on=r.resumed_on,
                resumed_by=r.resumed_by,  # type: ignore[arg-type]
                operator_id=r.operator_id,
                bills=[p.ResumedBill(**bill) for bill in listed.get(r.pk, [])],
            ).model_dump(mode="json"),
            occurred_at,
        )
        for r in resumptions
    ]
