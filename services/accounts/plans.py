"""Accounts' side of restructuring plans: move bills in, route money, unwind on default.

- ``plan.activated``: the named bills move into the plan (their unpaid principal,
  penalty and late fee become the plan receivable; accrual stops and they leave
  the DPD count); the plan's fees are booked as receivable; the account stays
  suspended while the plan is active.
- ``plan.defaulted``: the remaining plan principal and the fees already due
  become one overdue bill due on the first missed installment's date; future
  fees are cancelled; the ladder judges the account again at once.
- ``plan.completed``: fees never due (early settlement) are cancelled; the
  plan's suspension lifts, which cures the account if nothing else is overdue.

Decisions the rulebook leaves open (a careful lender's):
- Charges that accrued between the offer and its acceptance are waived: the
  customer accepted the disclosed principal, so the plan receivable is never
  more than the plan's ``principal``.
- Principal inside a plan is not counted in the account's unpaid principal:
  borrowing is suspended for the plan's whole life anyway, and a default puts
  what is left back as a bill.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from services.accounts.domain import ledger
from services.accounts.domain.overdue import overdue_charge_cap
from services.accounts.ledger_book import post
from services.accounts.models import Account, Bill, PlanProjection
from services.accounts.repayments import ladder_date, relock
from shared.bus.handling import HandlerContext
from shared.events import payloads as p
from shared.money import from_fen, to_fen


def _account(ctx: HandlerContext, account_id: str) -> Account | None:
    return ctx.session.scalar(select(Account).where(Account.account_id == account_id).with_for_update())


def _move_bills(ctx: HandlerContext, account: Account, plan_id: str, bill_ids: list[str], on: date) -> tuple[int, int]:
    """Move the named bills into the plan; returns (total moved, principal moved) in fen."""
    bills = ctx.session.scalars(
        select(Bill)
        .where(Bill.account_pk == account.pk, Bill.bill_id.in_(bill_ids), Bill.plan_id.is_(None))
        .with_for_update()
    ).all()
    moved = principal_moved = 0
    for bill in bills:
        principal, penalty, fee = bill.unpaid_principal_fen, bill.unpaid_penalty_fen, bill.unpaid_late_fee_fen
        post(
            ctx.session,
            ledger.moved_into_plan(from_fen(principal), from_fen(penalty), from_fen(fee)),
            account_pk=account.pk,
            bill_pk=bill.pk,
            business_date=on,
            posting_id=f"plan:{plan_id}:move:{bill.bill_id}",
        )
        bill.plan_id = plan_id
        bill.unpaid_principal_fen = bill.unpaid_penalty_fen = bill.unpaid_late_fee_fen = 0
        bill.settled_on = on
        moved += principal + penalty + fee
        principal_moved += principal
    return moved, principal_moved


def plan_activated(ctx: HandlerContext, event: p.PlanActivated) -> None:
    session = ctx.session
    account = _account(ctx, event.account_id)
    if account is None or session.get(PlanProjection, event.plan_id) is not None:
        return
    on = ctx.event_date
    moved, principal_moved = _move_bills(ctx, account, event.plan_id, list(event.bill_ids), on)
    plan_principal = to_fen(event.principal)
    if moved > plan_principal:  # accrued after the offer: waived, the customer accepted the disclosed amount
        post(
            session,
            ledger.plan_activation_waiver(from_fen(moved - plan_principal)),
            account_pk=account.pk,
            bill_pk=None,
            business_date=on,
            posting_id=f"plan:{event.plan_id}:waiver",
        )
    receivable = min(moved, plan_principal)
    total_fee = sum(to_fen(line.fee) for line in event.schedule)
    if total_fee:
        post(
            session,
            ledger.plan_fee_due(from_fen(total_fee)),
            account_pk=account.pk,
            bill_pk=None,
            business_date=on,
            posting_id=f"plan:{event.plan_id}:fees",
        )
    session.add(
        PlanProjection(
            plan_id=event.plan_id,
            account_pk=account.pk,
            status="active",
            principal_fen=receivable,
            outstanding_fen=receivable + total_fee,
            paid_fen=0,
            total_fee_fen=total_fee,
            activated_on=on,
        )
    )
    account.unpaid_principal_fen -= principal_moved
    session.flush()
    ctx.outbox.emit_many(
        session,
        relock(
            session,
            account.pk,
            ladder_date(session, on),
            ctx.rules,
            ctx.clock.now(),
            ctx.envelope.event_id,
            ctx.envelope.correlation_id,
            plan_active=True,
        ),
    )
    account.active_plan_id = event.plan_id  # after the ladder judged the change (cause: plan)


def _cancel_fees(ctx: HandlerContext, plan: PlanProjection, keep_fen: int, on: date, why: str) -> None:
    """Reduce the plan receivable to ``keep_fen``: fees that will never fall due are taken back."""
    cancel = plan.outstanding_fen - keep_fen
    if cancel > 0:
        post(
            ctx.session,
            ledger.plan_fees_cancelled(from_fen(cancel)),
            account_pk=plan.account_pk,
            bill_pk=None,
            business_date=on,
            posting_id=f"plan:{plan.plan_id}:{why}",
        )
    elif cancel < 0:
        post(
            ctx.session,
            ledger.plan_fee_due(from_fen(-cancel)),
            account_pk=plan.account_pk,
            bill_pk=None,
            business_date=on,
            posting_id=f"plan:{plan.plan_id}:{why}",
        )
    plan.outstanding_fen = keep_fen


def _active_plan(ctx: HandlerContext, plan_id: str, account_id: str) -> tuple[PlanProjection, Account] | None:
    """The active plan and its account, locked; None when either is unknown or the plan has ended
    (a redelivered or late plan event then changes nothing)."""
    plan = ctx.session.get(PlanProjection, plan_id, with_for_update=True)
    account = _account(ctx, account_id)
    if plan is None or account is None or plan.status != "active":
        return None
    return plan, account


def plan_defaulted(ctx: HandlerContext, event: p.PlanDefaulted) -> None:
    session = ctx.session
    found = _active_plan(ctx, event.plan_id, event.account_id)
    if found is None:
        return
    plan, account = found
    amount = to_fen(event.outstanding_principal + event.fees_due)
    _cancel_fees(ctx, plan, amount, event.business_date, "default")
    due = event.first_missed_due_date
    bill = Bill(
        bill_id=f"{plan.plan_id}-default",
        account_pk=account.pk,
        statement_date=event.business_date,
        due_date=due,
        due_ordinal=due.toordinal(),
        principal_fen=amount,
        charge_cap_fen=to_fen(overdue_charge_cap(from_fen(amount), ctx.rules.overdue)),
        unpaid_principal_fen=amount,
        unpaid_penalty_fen=0,
        unpaid_late_fee_fen=0,
        penalty_charged_fen=0,
        late_fee_charged_fen=0,
        dpd=0,
        written_off_fen=0,
        origin="plan_default",
    )
    session.add(bill)
    session.flush()
    post(
        session,
        ledger.plan_default_to_bill(from_fen(amount)),
        account_pk=account.pk,
        bill_pk=bill.pk,
        business_date=event.business_date,
        posting_id=f"plan:{plan.plan_id}:default",
    )
    plan.outstanding_fen, plan.status, plan.ended_on = 0, "defaulted", event.business_date
    account.unpaid_principal_fen += amount
    session.flush()
    ctx.emit(
        "bill.issued",
        p.BillIssued(
            bill_id=bill.bill_id,
            account_id=account.account_id,
            statement_date=event.business_date,
            due_date=due,
            amount=from_fen(amount),
        ),
        account.account_id,
    )
    ctx.outbox.emit_many(
        session,
        relock(
            session,
            account.pk,
            event.business_date,
            ctx.rules,
            ctx.clock.now(),
            ctx.envelope.event_id,
            ctx.envelope.correlation_id,
            plan_active=False,
        ),
    )
    account.active_plan_id = None


def plan_completed(ctx: HandlerContext, event: p.PlanCompleted) -> None:
    session = ctx.session
    found = _active_plan(ctx, event.plan_id, event.account_id)
    if found is None:
        return
    plan, account = found
    _cancel_fees(ctx, plan, 0, event.completed_on, "completed")
    plan.status, plan.ended_on = "completed", event.completed_on
    session.flush()
    on = ladder_date(session, event.completed_on)
    ctx.outbox.emit_many(
        session,
        relock(
            session,
            account.pk,
            on,
            ctx.rules,
            ctx.clock.now(),
            ctx.envelope.event_id,
            ctx.envelope.correlation_id,
            plan_active=False,
        ),
    )
    account.active_plan_id = None
