"""collections: the event types that arrive one at a time (a charge-off, a plan's events,
a collector's call, an SMS delivery report). Load, call the domain, save, emit.

The event types that come in floods are taken as runs, each in a module of its own
(``bills``, ``delinquency``, ``cures``, ``repayments``, ``risk_assessments``, ``grants``);
``registry`` maps every consumed type to its handler.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from services.collections.casebook import (
    aware,
    close_case,
    ensure_case,
    keep_pending_promises,
    reopen_case,
    suppress_queued,
    utc,
)
from services.collections.domain import CallOutcome, PromiseError, effect_of_outcome
from services.collections.models import (
    Bill,
    CollectorTask,
    ContactAttempt,
    Plan,
    PlanInstallment,
    PromiseToPay,
    SmsMessage,
)
from shared.bus.handling import HandlerContext
from shared.events import payloads as p
from shared.log import get_logger
from shared.money import to_fen

log = get_logger(__name__)


# --- accounts -----------------------------------------------------------------------------


def bill_charged_off(ctx: HandlerContext, event: p.BillChargedOff) -> None:
    """Written off in the ledger: the case closes (charged_off) and nothing more goes out."""
    session = ctx.session
    bill = session.get(Bill, event.bill_id)
    if bill is not None:
        bill.charged_off_on = event.business_date
    case = ensure_case(session, event.account_id, event.business_date)
    if close_case(session, ctx.emit, case, "charged_off", event.business_date):
        suppress_queued(session, ctx.emit, event.account_id, "charged_off", keep_plan_reminders=False)


def delinquency_paused(ctx: HandlerContext, event: p.DelinquencyPaused) -> None:
    """The account's delinquency is paused (RULES 2.8): whatever is queued is suppressed
    (``paused``) and nothing goes out until it resumes. A pause already resumed (its
    ``delinquency.resumed`` came first) changes nothing."""
    case = ensure_case(ctx.session, event.account_id, event.paused_on)
    if case.resumed_pause_on == event.paused_on:
        return
    case.paused_on, case.pause_reason = event.paused_on, event.reason
    suppress_queued(ctx.session, ctx.emit, event.account_id, "paused", keep_plan_reminders=False)


def delinquency_resumed(ctx: HandlerContext, event: p.DelinquencyResumed) -> None:
    """The pause is over: contact may resume, and each listed bill's due date moves on by
    the paused days its DPD does not count, so collections' DPD counts on from where it
    stood, as accounts' does."""
    session = ctx.session
    case = ensure_case(session, event.account_id, event.resumed_on)
    if case.paused_on is None or case.paused_on <= event.paused_on:
        case.paused_on, case.pause_reason = None, None
    case.resumed_pause_on = event.paused_on
    shifts = {b.bill_id: b.days_not_counted for b in event.bills if b.days_not_counted}
    for bill in session.scalars(select(Bill).where(Bill.bill_id.in_(sorted(shifts))).with_for_update()):
        bill.due_date += timedelta(days=shifts[bill.bill_id])


def dispute_accepted(ctx: HandlerContext, event: p.DisputeAccepted) -> None:
    """RULES 4.6: the disputed amount is set aside on the bill: it is not collected (a bill
    owing no more than what is disputed gets no contact)."""
    bill = ctx.session.get(Bill, event.bill_id, with_for_update=True)
    if bill is not None:
        bill.disputed_fen += to_fen(event.amount)


def dispute_closed(ctx: HandlerContext, event: p.DisputeClosed) -> None:
    """The dispute is resolved: what was upheld leaves the bill, the rest is collected again."""
    bill = ctx.session.get(Bill, event.bill_id, with_for_update=True)
    if bill is not None:
        bill.disputed_fen = max(0, bill.disputed_fen - to_fen(event.credited + event.owes_again))
        bill.unpaid_fen = max(0, bill.unpaid_fen - to_fen(event.credited))


# --- restructuring -------------------------------------------------------------------------


def plan_activated(ctx: HandlerContext, event: p.PlanActivated) -> None:
    """A plan is active: the case closes (restructured); only plan reminders go out."""
    session = ctx.session
    on = ctx.event_date
    if session.get(Plan, event.plan_id) is not None:
        return  # known: restructuring answered a retried acceptance with the same plan.activated again
    session.add(Plan(plan_id=event.plan_id, account_id=event.account_id, status="active", activated_on=on))
    for line in event.schedule:
        session.add(
            PlanInstallment(
                plan_id=event.plan_id,
                period=line.period,
                due_date=line.due_date,
                total_fen=to_fen(line.total),
                status="due",
            )
        )
    for bill in session.scalars(select(Bill).where(Bill.bill_id.in_(event.bill_ids))).all():
        bill.plan_id = event.plan_id
    case = ensure_case(session, event.account_id, on)
    case.plan_active, case.active_plan_id = True, event.plan_id
    suppress_queued(session, ctx.emit, event.account_id, "plan_active", keep_plan_reminders=True)
    close_case(session, ctx.emit, case, "restructured", on)


def plan_installment_overdue(ctx: HandlerContext, event: p.PlanInstallmentOverdue) -> None:
    installment = ctx.session.get(PlanInstallment, (event.plan_id, event.period))
    if installment is not None and installment.status != "paid":
        installment.status = "overdue"


def plan_installment_paid(ctx: HandlerContext, event: p.PlanInstallmentPaid) -> None:
    """A paid installment stops its reminders; the next one's due date takes over."""
    installment = ctx.session.get(PlanInstallment, (event.plan_id, event.period))
    if installment is not None:
        installment.status = "paid"


def plan_defaulted(ctx: HandlerContext, event: p.PlanDefaulted) -> None:
    """The plan failed: collections resume (the overdue bill it becomes arrives from accounts)."""
    _end_plan(ctx, event.plan_id, event.account_id, "defaulted", event.business_date)
    case = ensure_case(ctx.session, event.account_id, event.business_date)
    if case.status == "closed" and case.closed_reason == "restructured":
        reopen_case(case, event.business_date, keep_stage=True)
    suppress_queued(ctx.session, ctx.emit, event.account_id, "cured", keep_plan_reminders=False)


def plan_completed(ctx: HandlerContext, event: p.PlanCompleted) -> None:
    """Paid off: no more plan reminders; the case stays closed as restructured.

    The payment that completes a plan may clear the account's overdue too: accounts then
    sends ``account.cured`` and restructuring ``plan.completed``, and the two producers'
    events reach us in either order. A cure that comes first finds the plan active and
    does only its snapshot part. So when the plan ends on an account whose last snapshot
    is current (a cure's: a snapshot of an overdue account has DPD), the rest of that
    cure is done here, on its date: the case closed as cured if it was open, the pending
    promises kept. Either order then leaves the same case and promises. (A payment that
    leaves no cure finds its account's snapshot still overdue, or no snapshot at all.)"""
    _end_plan(ctx, event.plan_id, event.account_id, "completed", event.completed_on)
    suppress_queued(ctx.session, ctx.emit, event.account_id, "cured", keep_plan_reminders=False)
    case = ensure_case(ctx.session, event.account_id, event.completed_on)
    cured_on = case.delinquency_as_of
    if cured_on is not None and case.max_dpd == 0 and case.total_overdue_fen == 0:
        close_case(ctx.session, ctx.emit, case, "cured", cured_on)
        keep_pending_promises(ctx.session, {event.account_id: cured_on})


def _end_plan(ctx: HandlerContext, plan_id: str, account_id: str, status: str, on: date) -> None:
    plan = ctx.session.get(Plan, plan_id)
    if plan is not None and plan.status == "active":
        plan.status, plan.ended_on = status, on
    case = ensure_case(ctx.session, account_id, on)
    if case.active_plan_id == plan_id:
        case.plan_active, case.active_plan_id = False, None


# --- the collectors' desk and the SMS provider ----------------------------------------------


def collection_outcome_recorded(ctx: HandlerContext, event: p.CollectionOutcomeRecorded) -> None:
    """A collector's call: it counts as a call attempt; a promise pauses contact; a wrong
    number stops using that phone. An impossible promise is recorded without a pause."""
    session = ctx.session
    on = ctx.event_date
    task = session.get(CollectorTask, event.task_id)
    if task is not None:
        task.status, task.outcome, task.outcome_at = "done", event.outcome, utc(ctx.envelope.occurred_at)
    case = ensure_case(session, event.account_id, on)
    session.add(
        ContactAttempt(
            account_id=event.account_id,
            business_date=on,
            channel="call",
            kind="call",
            template="call",
            stage=case.stage or "pre_due",
            dpd=case.max_dpd,
            trigger="collector",
            task_id=event.task_id,
            status="attempted",
            reason=event.outcome,
            planned_for=utc(ctx.envelope.occurred_at),
            attempted_at=utc(ctx.envelope.occurred_at),
            sent_at=utc(ctx.envelope.occurred_at),
        )
    )
    try:
        effect = effect_of_outcome(
            CallOutcome(event.outcome),
            recorded_on=on,
            promised_date=event.promised_date,
            promised_amount=event.promised_amount,
            rules=ctx.rules.collections.compliance,
        )
    except PromiseError as exc:
        log.warning("promise_not_recorded", account_id=event.account_id, task_id=event.task_id, error=str(exc))
        return
    if effect.phone_reported_wrong:
        case.phone_reported_wrong = True
    if effect.promise is not None and effect.pause_until is not None:
        promise = effect.promise
        session.add(
            PromiseToPay(
                account_id=event.account_id,
                task_id=event.task_id,
                recorded_on=promise.recorded_on,
                promised_date=promise.promised_date,
                pause_until=effect.pause_until,
                status="pending",
                promised_amount_fen=to_fen(promise.promised_amount) if promise.promised_amount is not None else None,
            )
        )
        case.promise_broken = False


def sms_delivery_reported(ctx: HandlerContext, event: p.SmsDeliveryReported) -> None:
    """The provider's delivery report; the latest report wins, a stale one is ignored."""
    message = ctx.session.get(SmsMessage, event.message_id)
    if message is None:
        log.warning("delivery_report_unknown_message", message_id=event.message_id)
        return
    reported = utc(event.reported_at)
    stored = aware(message.reported_at)
    if stored is not None and reported < stored:
        return
    message.status, message.reported_at = event.status, reported
