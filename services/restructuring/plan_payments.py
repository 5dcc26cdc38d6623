"""Money routed to a plan pays its installments (oldest first, fee then principal).

A ``payment_id`` reaches a plan once. A payment to a plan that is not active is recorded
unapplied. The installment that is paid off announces itself (``plan.installment.paid``);
the last one, or an early settlement, completes the plan: the fees that never fell due are
waived, the account is released and ``plan.completed`` goes out.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select

from services.restructuring import store
from services.restructuring.domain import apply_payment
from services.restructuring.models import AccountView, Plan, PlanInstallment, PlanPayment
from shared.bus.handling import HandlerContext
from shared.events import payloads as p
from shared.log import get_logger
from shared.money import to_fen

log = get_logger(__name__)


def pay_plan(ctx: HandlerContext, plan_id: str, payment_id: str, amount: Decimal, paid_on: date) -> None:
    """``amount`` of payment ``payment_id`` on plan ``plan_id``, on the ORM rows (plans are few)."""
    session = ctx.session
    if session.get(PlanPayment, (plan_id, payment_id)) is not None:
        return  # this payment already reached this plan
    plan = session.scalar(select(Plan).where(Plan.plan_id == plan_id).with_for_update())
    if plan is None or plan.status != "active":
        log.warning(
            "plan_payment_unapplied", plan_id=plan_id, payment_id=payment_id, status=plan.status if plan else "unknown"
        )
        session.add(
            PlanPayment(
                plan_id=plan_id,
                payment_id=payment_id,
                amount_fen=to_fen(amount),
                applied_fen=0,
                unapplied_fen=to_fen(amount),
                paid_on=paid_on,
            )
        )
        return
    rows = store.load_installments(session, plan.pk)
    application = apply_payment(store.plan_schedule(plan, rows), store.plan_paid(rows), amount, paid_on)
    store.store_paid(rows, application.paid, paid_on)
    session.add(
        PlanPayment(
            plan_id=plan_id,
            payment_id=payment_id,
            amount_fen=to_fen(amount),
            applied_fen=to_fen(amount - application.unapplied),
            unapplied_fen=to_fen(application.unapplied),
            paid_on=paid_on,
        )
    )
    for period in application.periods_completed:
        ctx.emit(
            "plan.installment.paid",
            p.PlanInstallmentPaid(
                plan_id=plan.plan_id,
                account_id=plan.account_id,
                period=period,
                paid_on=paid_on,
            ),
            plan.plan_id,
        )
    if application.completed or all(r.status == "paid" for r in rows):
        _complete(ctx, plan, rows, paid_on, application.fees_waived)


def _complete(ctx: HandlerContext, plan: Plan, rows: list[PlanInstallment], on: date, fees_waived: Decimal) -> None:
    """The last installment or an early settlement: future fees are waived."""
    for row in rows:
        if row.status == "open":  # settled early: principal paid, its fee waived
            row.status, row.paid_on = "waived", on
    plan.status, plan.ended_on, plan.fees_waived_fen = "completed", on, to_fen(fees_waived)
    account = ctx.session.get(AccountView, plan.account_id)
    if account is not None and account.active_plan_id == plan.plan_id:
        account.active_plan_id = None
    ctx.emit(
        "plan.completed",
        p.PlanCompleted(plan_id=plan.plan_id, account_id=plan.account_id, completed_on=on),
        plan.plan_id,
    )
