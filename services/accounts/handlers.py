"""Accounts: one function per consumed event type. Load, call the domain, save, emit."""
from __future__ import annotations

from sqlalchemy import select

from services.accounts.domain import ledger
from services.accounts.domain.billing import purchase_decision
from services.accounts.ledger_book import post
from services.accounts.models import Account, Purchase
from services.accounts.plans import plan_activated, plan_completed, plan_defaulted
from services.accounts.repayments import repayment_received
from services.accounts.standing import available, borrowing_status
from shared.bus.handling import Handler, HandlerContext
from shared.clock import business_date
from shared.events import payloads as p
from shared.money import from_fen, to_fen


def credit_line_granted(ctx: HandlerContext, event: p.CreditLineGranted) -> None:
    """Open the credit line; a second grant for a known account changes nothing."""
    session = ctx.session
    if session.scalar(select(Account.pk).where(Account.account_id == event.account_id)) is not None:
        return
    limit_fen = to_fen(event.credit_limit)
    session.add(Account(
        account_id=event.account_id, customer_id=event.customer_id, identity_hash=event.identity_hash,
        opened_on=event.opened_on, granted_limit_fen=limit_fen, credit_limit_fen=limit_fen,
        limit_cut=False, unpaid_principal_fen=0, credit_balance_fen=0, status="open", level=0,
        linked_level=_linked_level_for_new(ctx, event.identity_hash), max_dpd=0,
        monthly_income_fen=to_fen(event.monthly_income) if event.monthly_income is not None else None,
    ))
    ctx.emit("credit.line.opened", p.CreditLineOpened(
        account_id=event.account_id, credit_limit=event.credit_limit, opened_on=event.opened_on,
    ), event.account_id)


def _linked_level_for_new(ctx: HandlerContext, identity_hash: str) -> int:
    """A new line of an identity whose other lines are frozen starts restricted too."""
    levels = ctx.session.scalars(select(Account.level).where(Account.identity_hash == identity_hash)).all()
    return max(levels, default=0)


def purchase_requested(ctx: HandlerContext, event: p.PurchaseRequested) -> None:
    """Authorise a purchase against the account's standing and available limit."""
    session = ctx.session
    account = session.scalar(select(Account).where(Account.account_id == event.account_id).with_for_update())
    known = session.get(Purchase, event.purchase_id)
    if known is not None:  # the same purchase asked again: answer as before
        ctx.emit("purchase.approved", p.PurchaseApproved(
            purchase_id=known.purchase_id, account_id=event.account_id, amount=from_fen(known.amount_fen),
            available_limit=available(account) if account else from_fen(0),
        ), event.account_id)
        return
    decision = purchase_decision(
        borrowing_status(account) if account else None,  # type: ignore[arg-type]
        available(account) if account else from_fen(0),
        event.amount,
    )
    if not decision.approved:
        ctx.emit("purchase.declined", p.PurchaseDeclined(
            purchase_id=event.purchase_id, account_id=event.account_id, amount=event.amount,
            reason=decision.reason,  # type: ignore[arg-type]
        ), event.account_id)
        return
    assert account is not None
    amount_fen = to_fen(event.amount)
    posted_on = business_date(event.requested_at)
    session.add(Purchase(
        purchase_id=event.purchase_id, account_pk=account.pk, amount_fen=amount_fen, merchant=event.merchant[:128],
        requested_at=event.requested_at, posted_on=posted_on,
    ))
    account.unpaid_principal_fen += amount_fen
    post(session, ledger.purchase_posted(event.amount), account_pk=account.pk, bill_pk=None,
         business_date=posted_on, posting_id=f"purchase:{event.purchase_id}")
    ctx.emit("purchase.approved", p.PurchaseApproved(
        purchase_id=event.purchase_id, account_id=event.account_id, amount=event.amount,
        available_limit=decision.available_after,
    ), event.account_id)


HANDLERS: dict[str, Handler] = {
    "credit.line.granted": credit_line_granted,
    "purchase.requested": purchase_requested,
    "repayment.received": repayment_received,
    "plan.activated": plan_activated,
    "plan.defaulted": plan_defaulted,
    "plan.completed": plan_completed,
}
