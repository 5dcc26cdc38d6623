"""Hardship waivers as accounts keeps them (RULES 4.5), maker-checker above a threshold.

- ``waiver.requested``: judged (``domain/waivers.py``); at or below
  ``waivers.approval_threshold`` applied at once (``waiver.applied``), above it kept as
  pending (``waiver.pending``) for a second operator; a refusal is ``waiver.rejected``.
- ``waiver.decision.recorded``: the checker approves (``waiver.approved``, then
  ``waiver.applied``) or declines (``waiver.declined``) a pending waiver; the requester's
  own decision, or one on a waiver not pending, is ``waiver.decision.rejected``.

Applying posts ``hardship_waiver`` through the ledger (waiver expense debited, the
component's receivable credited: the balance invariants hold) and lowers what the bill
owes; a bill left owing nothing is settled. Every command's first answer is kept, so a
repeated id gets it again and changes nothing.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select, update

from services.accounts.domain import ledger
from services.accounts.domain.waivers import (
    APPLIED,
    DECLINED,
    PENDING,
    BillFacts,
    amount_to_apply,
    decision_rejection,
    needs_approval,
    request_rejection,
)
from services.accounts.ledger_book import post
from services.accounts.models import ANSWERS, Account, Bill, BureauMark, Waiver
from shared.bus.answers import AnswerBook, repeat
from shared.bus.handling import HandlerContext
from shared.bus.outbox import PendingEvent
from shared.events import payloads as p
from shared.money import from_fen, to_fen

REQUEST_ANSWERS = AnswerBook(ANSWERS, "waiver.requested")
DECISION_ANSWERS = AnswerBook(ANSWERS, "waiver.decision.recorded")


def _outstanding_fen(bill: Bill, component: str) -> int:
    return bill.unpaid_penalty_fen if component == "penalty_interest" else bill.unpaid_late_fee_fen


def waiver_requested(ctx: HandlerContext, event: p.WaiverRequested) -> None:
    session = ctx.session
    earlier = REQUEST_ANSWERS.find(session, event.request_id)
    if earlier is not None:
        ctx.outbox.emit_many(session, [repeat(ctx, earlier)])
        return
    account = session.scalar(select(Account).where(Account.account_id == event.account_id).with_for_update())
    bill = (
        session.scalar(select(Bill).where(Bill.account_pk == account.pk, Bill.bill_id == event.bill_id))
        if account is not None
        else None
    )
    facts = (
        BillFacts(
            bill.plan_id is not None, bill.charged_off_on is not None, from_fen(_outstanding_fen(bill, event.component))
        )
        if bill is not None
        else None
    )
    reason = request_rejection(account is not None, facts, event.amount)
    if reason is not None:
        rejected = p.WaiverRejected(request_id=event.request_id, account_id=event.account_id, reason=reason)
        REQUEST_ANSWERS.answer(ctx, event.request_id, [ctx.reply("waiver.rejected", rejected, event.account_id)])
        return
    assert account is not None and bill is not None
    today = ctx.event_date
    waiver = Waiver(
        waiver_id=event.request_id,
        account_pk=account.pk,
        bill_pk=bill.pk,
        component=event.component,
        amount_fen=to_fen(event.amount),
        reason=event.reason,
        requested_by=event.requested_by,
        requested_on=today,
        status=PENDING,
        applied_fen=0,
    )
    session.add(waiver)
    if needs_approval(event.amount, ctx.rules.waivers.approval_threshold):
        pending = p.WaiverPending(
            waiver_id=waiver.waiver_id,
            account_id=account.account_id,
            bill_id=bill.bill_id,
            component=event.component,
            amount=event.amount,
            reason=event.reason,
            requested_by=event.requested_by,
            requested_on=today,
        )
        REQUEST_ANSWERS.answer(ctx, event.request_id, [ctx.reply("waiver.pending", pending, account.account_id)])
        return
    applied = _apply(ctx, waiver, account, bill, today, approved_by=None)
    REQUEST_ANSWERS.answer(ctx, event.request_id, [applied])


def waiver_decision_recorded(ctx: HandlerContext, event: p.WaiverDecisionRecorded) -> None:
    session = ctx.session
    earlier = DECISION_ANSWERS.find(session, event.decision_id)
    if earlier is not None:
        ctx.outbox.emit_many(session, [repeat(ctx, earlier)])
        return
    waiver = session.get(Waiver, event.waiver_id, with_for_update=True)
    reason = decision_rejection(
        waiver.status if waiver else None, waiver.requested_by if waiver else None, event.decided_by
    )
    if reason is not None:
        rejected = p.WaiverDecisionRejected(decision_id=event.decision_id, waiver_id=event.waiver_id, reason=reason)
        answer = ctx.reply("waiver.decision.rejected", rejected, event.waiver_id)
        DECISION_ANSWERS.answer(ctx, event.decision_id, [answer])
        return
    assert waiver is not None
    account = session.scalar(select(Account).where(Account.pk == waiver.account_pk).with_for_update())
    bill = session.get(Bill, waiver.bill_pk, with_for_update=True)
    assert account is not None and bill is not None
    today = ctx.event_date
    waiver.decided_by, waiver.decided_on = event.decided_by, today
    if event.decision == "decline":
        waiver.status = DECLINED
        declined = p.WaiverDeclined(
            decision_id=event.decision_id,
            waiver_id=waiver.waiver_id,
            account_id=account.account_id,
            declined_by=event.decided_by,
            declined_on=today,
        )
        answer = ctx.reply("waiver.declined", declined, account.account_id)
        DECISION_ANSWERS.answer(ctx, event.decision_id, [answer])
        return
    approved = p.WaiverApproved(
        decision_id=event.decision_id,
        waiver_id=waiver.waiver_id,
        account_id=account.account_id,
        approved_by=event.decided_by,
        approved_on=today,
    )
    events = [
        ctx.reply("waiver.approved", approved, account.account_id),
        _apply(ctx, waiver, account, bill, today, approved_by=event.decided_by),
    ]
    DECISION_ANSWERS.answer(ctx, event.decision_id, events)


def _apply(
    ctx: HandlerContext, waiver: Waiver, account: Account, bill: Bill, today: date, approved_by: str | None
) -> PendingEvent:
    """Take the waiver off the bill and post it; ``waiver.applied`` with what it took off."""
    amount = amount_to_apply(from_fen(waiver.amount_fen), from_fen(_outstanding_fen(bill, waiver.component)))
    fen = to_fen(amount)
    if waiver.component == "penalty_interest":
        bill.unpaid_penalty_fen -= fen
    else:
        bill.unpaid_late_fee_fen -= fen
    if fen:
        post(
            ctx.session,
            ledger.hardship_waiver_posted(waiver.component, amount),
            account_pk=account.pk,
            bill_pk=bill.pk,
            business_date=today,
            posting_id=f"waiver:{waiver.waiver_id}",
        )
    if bill.settled_on is None and bill.unpaid_principal_fen + bill.unpaid_penalty_fen + bill.unpaid_late_fee_fen == 0:
        bill.settled_on = today
        ctx.session.execute(update(BureauMark).where(BureauMark.bill_pk == bill.pk).values(settled_on=today))
    waiver.status, waiver.applied_fen = APPLIED, fen
    applied = p.WaiverApplied(
        waiver_id=waiver.waiver_id,
        account_id=account.account_id,
        bill_id=bill.bill_id,
        component=waiver.component,  # type: ignore[arg-type]
        amount=amount,
        requested_by=waiver.requested_by,
        approved_by=approved_by,
        applied_on=today,
    )
    return ctx.reply("waiver.applied", applied, account.account_id)
