"""Disputes as accounts keeps them (RULES 4.6): opened from the customer app, resolved by
an operator, each step an event and, where money moves, a ledger posting.

- ``dispute.opened``: the amount is set aside on its bill (``bills.disputed_fen``): the
  close charges and judges the rest only (``daily_close._collectable``) and the
  delinquency snapshot leaves it out, so collections does not collect it
  (``dispute.accepted``, or ``dispute.rejected`` with a reason).
- ``dispute.resolved``: upheld (all, or the part upheld) is credited back
  (``dispute_upheld``) with the charges that accrued on it before it was disputed
  reversed (``dispute_reversal``); the rest owes again. ``dispute.closed`` says what.
- the daily close raises ``dispute.service_level.breached`` once for a dispute open
  longer than the service level (``service_level_alerts``, set-based).

The pure rules are ``domain/disputes.py``. A repeated dispute id, or resolution id, gets its first answer.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.accounts.domain import ledger
from services.accounts.domain.disputes import (
    OPEN,
    RESOLVED,
    DisputedBill,
    charge_share,
    open_rejection,
    resolution_rejection,
    upheld_amount,
)
from services.accounts.domain.overdue import capped, daily_penalty
from services.accounts.ledger_book import post
from services.accounts.models import ANSWERS, Account, Bill, BureauMark, DailyAccrual, Dispute, Purchase
from services.accounts.repayments import ladder_date, relock
from shared.bus.answers import AnswerBook, repeat
from shared.bus.handling import HandlerContext
from shared.bus.outbox import PendingEvent
from shared.clock import business_date
from shared.events import payloads as p
from shared.money import ZERO, from_fen, to_fen

OPEN_ANSWERS = AnswerBook(ANSWERS, "dispute.opened")
RESOLVE_ANSWERS = AnswerBook(ANSWERS, "dispute.resolved")


def _disputed_bill(session: Session, account: Account, event: p.DisputeOpened) -> Bill | None:
    bill_id = event.bill_id
    if bill_id is None and event.purchase_id is not None:
        bill_id = session.scalar(
            select(Purchase.bill_id).where(Purchase.purchase_id == event.purchase_id, Purchase.account_pk == account.pk)
        )
    if bill_id is None:
        return None
    return session.scalar(select(Bill).where(Bill.account_pk == account.pk, Bill.bill_id == bill_id).with_for_update())


def dispute_opened(ctx: HandlerContext, event: p.DisputeOpened) -> None:
    session = ctx.session
    earlier = OPEN_ANSWERS.find(session, event.dispute_id)
    if earlier is not None:
        ctx.outbox.emit_many(session, [repeat(ctx, earlier)])
        return
    account = session.scalar(select(Account).where(Account.account_id == event.account_id).with_for_update())
    bill = _disputed_bill(session, account, event) if account is not None else None
    facts = (
        DisputedBill(
            bill.plan_id is not None,
            bill.charged_off_on is not None,
            from_fen(bill.unpaid_principal_fen),
            from_fen(bill.disputed_fen),
        )
        if bill is not None
        else None
    )
    reason = open_rejection(account is not None, facts, event.amount)
    if reason is not None:
        rejected = p.DisputeRejected(dispute_id=event.dispute_id, account_id=event.account_id, reason=reason)
        OPEN_ANSWERS.answer(ctx, event.dispute_id, [ctx.reply("dispute.rejected", rejected, event.account_id)])
        return
    assert account is not None and bill is not None
    opened_on = business_date(event.opened_at)
    bill.disputed_fen += to_fen(event.amount)
    session.add(
        Dispute(
            dispute_id=event.dispute_id,
            account_pk=account.pk,
            bill_pk=bill.pk,
            purchase_id=event.purchase_id,
            amount_fen=to_fen(event.amount),
            reason=event.reason,
            opened_on=opened_on,
            status=OPEN,
            credited_fen=0,
            charges_reversed_fen=0,
        )
    )
    accepted = p.DisputeAccepted(
        dispute_id=event.dispute_id,
        account_id=account.account_id,
        bill_id=bill.bill_id,
        purchase_id=event.purchase_id,
        amount=event.amount,
        reason=event.reason,
        opened_on=opened_on,
    )
    session.flush()
    events = [ctx.reply("dispute.accepted", accepted, account.account_id)]
    events += _relock(ctx, account)
    OPEN_ANSWERS.answer(ctx, event.dispute_id, events)


def _relock(ctx: HandlerContext, account: Account) -> list[PendingEvent]:
    """The ladder judged again at once: setting an amount aside, or crediting it, may cure."""
    as_of = ladder_date(ctx.session, ctx.event_date)
    return relock(
        ctx.session,
        account.pk,
        as_of,
        ctx.rules,
        ctx.clock.now(),
        ctx.envelope.event_id,
        ctx.envelope.correlation_id,
        account=account,
    )


def dispute_resolved(ctx: HandlerContext, event: p.DisputeResolved) -> None:
    session = ctx.session
    earlier = RESOLVE_ANSWERS.find(session, event.resolution_id)
    if earlier is not None:
        ctx.outbox.emit_many(session, [repeat(ctx, earlier)])
        return
    dispute = session.get(Dispute, event.dispute_id, with_for_update=True)
    amount = from_fen(dispute.amount_fen) if dispute else ZERO
    reason = resolution_rejection(dispute.status if dispute else None, event.outcome, amount, event.upheld_amount)
    if reason is not None:
        rejected = p.DisputeResolutionRejected(
            resolution_id=event.resolution_id, dispute_id=event.dispute_id, reason=reason
        )
        answer = ctx.reply("dispute.resolution.rejected", rejected, event.dispute_id)
        RESOLVE_ANSWERS.answer(ctx, event.resolution_id, [answer])
        return
    assert dispute is not None
    account = session.scalar(select(Account).where(Account.pk == dispute.account_pk).with_for_update())
    bill = session.get(Bill, dispute.bill_pk, with_for_update=True)
    assert account is not None and bill is not None
    today = ctx.event_date
    credited = upheld_amount(event.outcome, amount, event.upheld_amount)
    bill.disputed_fen = max(0, bill.disputed_fen - dispute.amount_fen)
    penalty, fee = _reverse_charges(session, bill, dispute, credited, today) if credited else (ZERO, ZERO)
    _credit_back(session, account, bill, dispute, credited, today)
    owes_again = amount - credited
    if owes_again and ctx.rules.disputes.charge_disputed_days_on_rejection:
        _charge_disputed_days(session, bill, dispute, owes_again, today, ctx)
    dispute.status, dispute.outcome, dispute.resolved_by, dispute.resolved_on = (
        RESOLVED,
        event.outcome,
        event.resolved_by,
        today,
    )
    dispute.credited_fen, dispute.charges_reversed_fen = to_fen(credited), to_fen(penalty + fee)
    if bill.settled_on is None and bill.unpaid_principal_fen + bill.unpaid_penalty_fen + bill.unpaid_late_fee_fen == 0:
        bill.settled_on = today
        session.execute(update(BureauMark).where(BureauMark.bill_pk == bill.pk).values(settled_on=today))
    closed = p.DisputeClosed(
        resolution_id=event.resolution_id,
        dispute_id=dispute.dispute_id,
        account_id=account.account_id,
        bill_id=bill.bill_id,
        outcome=event.outcome,
        credited=credited,
        penalty_reversed=penalty,
        late_fee_reversed=fee,
        owes_again=owes_again,
        resolved_by=event.resolved_by,
        resolved_on=today,
    )
    session.flush()
    events = [ctx.reply("dispute.closed", closed, account.account_id), *_relock(ctx, account)]
    RESOLVE_ANSWERS.answer(ctx, event.resolution_id, events)


def _reverse_charges(
    session: Session, bill: Bill, dispute: Dispute, credited: Decimal, today: date
) -> tuple[Decimal, Decimal]:
    """Reverse each close's share of the charges the credited amount bore before it was
    disputed (afterwards it was set aside and bore none); what was already paid of them
    goes back to the customer as credit balance."""
    penalty = fee = 0
    for accrual in session.scalars(
        select(DailyAccrual)
        .where(DailyAccrual.bill_pk == bill.pk, DailyAccrual.business_date <= dispute.opened_on)
        .order_by(DailyAccrual.business_date)
    ):
        basis = from_fen(accrual.basis_fen)
        share_p = to_fen(charge_share(from_fen(accrual.penalty_fen), credited, basis))
        share_f = to_fen(charge_share(from_fen(accrual.late_fee_fen), credited, basis))
        if share_p or share_f:
            accrual.penalty_fen -= share_p
            accrual.late_fee_fen -= share_f
            penalty, fee = penalty + share_p, fee + share_f
    if not (penalty or fee):
        return ZERO, ZERO
    bill.penalty_charged_fen -= penalty
    bill.late_fee_charged_fen -= fee
    bill.unpaid_penalty_fen -= penalty
    bill.unpaid_late_fee_fen -= fee
    post(
        session,
        ledger.dispute_charges_reversed(from_fen(penalty), from_fen(fee)),
        account_pk=bill.account_pk,
        bill_pk=bill.pk,
        business_date=today,
        posting_id=f"dispute:{dispute.dispute_id}:reversal",
    )
    paid_p, paid_f = max(0, -bill.unpaid_penalty_fen), max(0, -bill.unpaid_late_fee_fen)
    if paid_p or paid_f:
        bill.unpaid_penalty_fen += paid_p
        bill.unpaid_late_fee_fen += paid_f
        account = session.get(Account, bill.account_pk)
        assert account is not None
        account.credit_balance_fen += paid_p + paid_f
        post(
            session,
            ledger.reversal_refunded(from_fen(paid_p), from_fen(paid_f)),
            account_pk=bill.account_pk,
            bill_pk=bill.pk,
            business_date=today,
            posting_id=f"dispute:{dispute.dispute_id}:reversal_refund",
        )
    return from_fen(penalty), from_fen(fee)


def _credit_back(
    session: Session, account: Account, bill: Bill, dispute: Dispute, credited: Decimal, today: date
) -> None:
    """The credited amount leaves the principal owed; what of it was already paid becomes
    credit balance."""
    if credited <= 0:
        return
    fen = to_fen(credited)
    principal = min(fen, bill.unpaid_principal_fen)
    bill.unpaid_principal_fen -= principal
    account.unpaid_principal_fen -= principal
    account.credit_balance_fen += fen - principal
    post(
        session,
        ledger.dispute_upheld_posted(from_fen(principal), from_fen(fen - principal)),
        account_pk=account.pk,
        bill_pk=bill.pk,
        business_date=today,
        posting_id=f"dispute:{dispute.dispute_id}:upheld",
    )


def _charge_disputed_days(
    session: Session, bill: Bill, dispute: Dispute, owes_again: Decimal, today: date, ctx: HandlerContext
) -> None:
    """``disputes.charge_disputed_days_on_rejection``: the penalty the amount would have
    borne on the closes while it was set aside (those with the bill past due), capped."""
    first = max(dispute.opened_on, bill.due_date) + timedelta(days=1)
    days = max(0, (today - first).days + 1)
    rules = ctx.rules.overdue
    charge = capped(
        daily_penalty(min(owes_again, from_fen(bill.unpaid_principal_fen)), rules) * days,
        from_fen(bill.principal_fen),
        from_fen(bill.penalty_charged_fen + bill.late_fee_charged_fen),
        rules,
    )
    fen = to_fen(charge)
    if not fen:
        return
    bill.penalty_charged_fen += fen
    bill.unpaid_penalty_fen += fen
    post(
        session,
        ledger.penalty_accrued(charge),
        account_pk=bill.account_pk,
        bill_pk=bill.pk,
        business_date=today,
        posting_id=f"dispute:{dispute.dispute_id}:disputed_days",
    )


def service_level_alerts(
    session: Session, day: date, lo: int, hi: int, service_level_days: int, occurred_at: datetime
) -> list[PendingEvent]:
    """``dispute.service_level.breached`` for the chunk's disputes open longer than the service
    level (``domain.disputes.service_level_breached``), once each: one SELECT, one UPDATE."""
    latest_opened = day - timedelta(days=service_level_days + 1)
    due = (
        Dispute.account_pk >= lo,
        Dispute.account_pk < hi,
        Dispute.status == OPEN,
        Dispute.alerted_on.is_(None),
        Dispute.opened_on <= latest_opened,
    )
    rows = session.execute(
        select(Dispute.dispute_id, Account.account_id, Dispute.opened_on)
        .join(Account, Account.pk == Dispute.account_pk)
        .where(*due)
        .order_by(Dispute.dispute_id)
    ).all()
    if not rows:
        return []
    session.execute(update(Dispute).where(*due).values(alerted_on=day))
    return [
        PendingEvent(
            "dispute.service_level.breached",
            account_id,
            p.DisputeServiceLevelBreached(
                dispute_id=dispute_id,
                account_id=account_id,
                opened_on=opened_on,
                business_date=day,
                days_open=(day - opened_on).days,
            ).model_dump(mode="json"),
            occurred_at,
        )
        for dispute_id, account_id, opened_on in rows
    ]
