"""collections: one function per consumed event type. Load, call the domain, save, emit.

Ordering (events are not ordered on the bus): absolute snapshots (bill.overdue,
account.delinquency.updated, account.cured, risk.assessed) carry a business date and/or
the producer's sequence; a snapshot older than the stored one is ignored. Deltas
(repayment.applied) are applied once (the inbox) and only to bills whose snapshot is
older than the delta.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.collections.bills import bill_issued_batch
from services.collections.casebook import (
    aware,
    close_case,
    ensure_case,
    reopen_case,
    suppress_queued,
    utc,
)
from services.collections.cures import account_cured_batch
from services.collections.delinquency import account_delinquency_updated_batch, bill_overdue_batch
from services.collections.domain import CallOutcome, PromiseError, effect_of_outcome
from services.collections.grades import risk_assessed_batch
from services.collections.grants import credit_line_granted_batch
from services.collections.models import (
    Bill,
    CollectionCase,
    CollectorTask,
    ContactAttempt,
    Plan,
    PlanInstallment,
    PromiseToPay,
    SmsMessage,
)
from services.collections.repayments import repayment_applied_batch
from shared.bus.handling import BatchHandler, Handler, HandlerContext
from shared.events import payloads as p
from shared.log import get_logger
from shared.money import to_fen

log = get_logger(__name__)



def _newer(stored_date: date | None, stored_seq: int | None, new_date: date, new_seq: int | None) -> bool:
    """True unless the stored snapshot is strictly newer: a later business date, or the
    same date with a higher sequence. An unsequenced event on the same date applies."""
    if stored_date is None or new_date > stored_date:
        return True
    if new_date < stored_date:
        return False
    return stored_seq is None or new_seq is None or new_seq >= stored_seq


def _reopen_if_due(case: CollectionCase, on: date) -> None:
    """A cured case reopens when the account owes again after the cure (a new episode);
    a restructured case whose plan is over (completed) reopens for new bills."""
    if case.status != "closed" or case.plan_active:
        return
    if case.closed_reason == "cured" and (case.closed_on is None or on >= case.closed_on):
        reopen_case(case, on, keep_stage=False)
    elif case.closed_reason == "restructured":
        reopen_case(case, on, keep_stage=False)


# --- accounts -----------------------------------------------------------------------------

def bill_issued(ctx: HandlerContext, event: p.BillIssued) -> None:
    """A new bill: the pre-due reminders count from its due date.

    The reference for one event: the registered handler is the set-based
    ``bills.bill_issued_batch``, held equal to this one by the tests."""
    session = ctx.session
    case = ensure_case(session, event.account_id, event.statement_date)
    if session.get(Bill, event.bill_id) is None:
        amount = to_fen(event.amount)
        session.add(Bill(bill_id=event.bill_id, account_id=event.account_id, due_date=event.due_date,
                         amount_fen=amount, unpaid_fen=amount, dpd=0))
    _reopen_if_due(case, event.statement_date)
    if case.opened_on is None:
        case.opened_on = event.statement_date


def bill_overdue(ctx: HandlerContext, event: p.BillOverdue) -> None:
    """A bill went overdue (also the bill a defaulted plan becomes).

    The reference for one event: the registered handler is the set-based
    ``delinquency.bill_overdue_batch``, held equal to this one by the tests."""
    session = ctx.session
    case = ensure_case(session, event.account_id, event.business_date)
    _snapshot_bill(ctx, event.account_id, event.bill_id, event.due_date, event.dpd, to_fen(event.unpaid_principal),
                   event.business_date)
    if event.unpaid_principal > 0:
        _reopen_if_due(case, event.business_date)


def _snapshot_bill(ctx: HandlerContext, account_id: str, bill_id: str, due_date: date, dpd: int, unpaid_fen: int,
                   as_of: date) -> None:
    """Set a bill's unpaid principal from an absolute snapshot, unless ours is newer."""
    bill = ctx.session.get(Bill, bill_id)
    seq = ctx.envelope.sequence
    if bill is None:
        ctx.session.add(Bill(bill_id=bill_id, account_id=account_id, due_date=due_date, amount_fen=unpaid_fen,
                             unpaid_fen=unpaid_fen, dpd=dpd, state_date=as_of, state_seq=seq))
        return
    if _newer(bill.state_date, bill.state_seq, as_of, seq):
        bill.unpaid_fen, bill.dpd, bill.state_date, bill.state_seq = unpaid_fen, dpd, as_of, seq


def bill_charged_off(ctx: HandlerContext, event: p.BillChargedOff) -> None:
    """Written off in the ledger: the case closes (charged_off) and nothing more goes out."""
    session = ctx.session
    bill = session.get(Bill, event.bill_id)
    if bill is not None:
        bill.charged_off_on = event.business_date
    case = ensure_case(session, event.account_id, event.business_date)
    if close_case(session, ctx.emit, case, "charged_off", event.business_date):
        suppress_queued(session, ctx.emit, event.account_id, "charged_off", keep_plan_reminders=False)


def account_delinquency_updated(ctx: HandlerContext, event: p.AccountDelinquencyUpdated) -> None:
    """The daily snapshot of the account's overdue: max DPD, amounts, every overdue bill.

    An update older than the stored one (business date, then sequence) is ignored whole.
    Overdue bills missing from a newer snapshot were paid.
    """
    session = ctx.session
    case = ensure_case(session, event.account_id, event.business_date)
    if not _newer(case.delinquency_as_of, case.delinquency_seq, event.business_date, ctx.envelope.sequence):
        log.info("stale_delinquency_ignored", account_id=event.account_id, business_date=str(event.business_date))
        return
    case.delinquency_as_of, case.delinquency_seq = event.business_date, ctx.envelope.sequence
    case.max_dpd = event.max_dpd
    case.overdue_principal_fen = to_fen(event.overdue_principal)
    case.total_overdue_fen = to_fen(event.total_overdue)
    listed = set()
    for line in event.bills:
        listed.add(line.bill_id)
        _snapshot_bill(ctx, event.account_id, line.bill_id, line.due_date, line.dpd, to_fen(line.unpaid_principal),
                       event.business_date)
    _clear_unlisted_overdue_bills(ctx, event.account_id, listed, event.business_date)
    if event.max_dpd > 0:
        _reopen_if_due(case, event.business_date)


def _clear_unlisted_overdue_bills(ctx: HandlerContext, account_id: str, listed: set[str], as_of: date) -> None:
    bills = ctx.session.scalars(select(Bill).where(
        Bill.account_id == account_id, Bill.due_date < as_of, Bill.unpaid_fen > 0, Bill.plan_id.is_(None),
    )).all()
    for bill in bills:
        if bill.bill_id not in listed and _newer(bill.state_date, bill.state_seq, as_of, ctx.envelope.sequence):
            bill.unpaid_fen, bill.state_date, bill.state_seq = 0, as_of, ctx.envelope.sequence


def account_cured(ctx: HandlerContext, event: p.AccountCured) -> None:
    """No overdue left: close the case (cured) and suppress whatever was still queued.

    The reference for one event: the registered handler is the set-based
    ``cures.account_cured_batch``, held equal to this one by the tests."""
    session = ctx.session
    case = ensure_case(session, event.account_id, event.business_date)
    if not _newer(case.delinquency_as_of, case.delinquency_seq, event.business_date, ctx.envelope.sequence):
        return
    case.delinquency_as_of, case.delinquency_seq = event.business_date, ctx.envelope.sequence
    case.max_dpd, case.overdue_principal_fen, case.total_overdue_fen = 0, 0, 0
    for bill in session.scalars(select(Bill).where(
            Bill.account_id == event.account_id, Bill.due_date < event.business_date, Bill.unpaid_fen > 0)).all():
        bill.unpaid_fen = 0
    if case.plan_active:
        return  # the plan's bills left DPD; its own reminders go on
    suppress_queued(session, ctx.emit, event.account_id, "cured", keep_plan_reminders=False)
    close_case(session, ctx.emit, case, "cured", event.business_date)
    keep_pending_promises(session, event.account_id, event.business_date)


# --- restructuring -------------------------------------------------------------------------

def risk_assessed(ctx: HandlerContext, event: p.RiskAssessed) -> None:
    """The account's grade drives the strategy (grade C until this arrives).

    The reference for one event: the registered handler is the set-based
    ``grades.risk_assessed_batch``, held equal to this one by the tests."""
    case = ensure_case(ctx.session, event.account_id, ctx.event_date)
    seq = ctx.envelope.sequence
    if seq is not None and case.grade_seq is not None and seq < case.grade_seq:
        return
    case.grade, case.grade_seq = event.grade, seq


def plan_activated(ctx: HandlerContext, event: p.PlanActivated) -> None:
    """A plan is active: the case closes (restructured); only plan reminders go out."""
    session = ctx.session
    on = ctx.event_date
    if session.get(Plan, event.plan_id) is None:
        session.add(Plan(plan_id=event.plan_id, account_id=event.account_id, status="active", activated_on=on))
        for line in event.schedule:
            session.add(PlanInstallment(plan_id=event.plan_id, period=line.period, due_date=line.due_date,
                                        total_fen=to_fen(line.total), status="due"))
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
        keep_pending_promises(ctx.session, event.account_id, cured_on)


def keep_pending_promises(session: Session, account_id: str, on: date) -> None:
    """Nothing is overdue any more: every promise still pending was kept (decided ``on``)."""
    session.execute(PromiseToPay.__table__.update().where(
        PromiseToPay.account_id == account_id, PromiseToPay.status == "pending",
    ).values(status="kept", decided_on=on))


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
    session.add(ContactAttempt(
        account_id=event.account_id, business_date=on, channel="call", kind="call", template="call",
        stage=case.stage or "pre_due", dpd=case.max_dpd, trigger="collector", task_id=event.task_id,
        status="attempted", reason=event.outcome, planned_for=utc(ctx.envelope.occurred_at),
        attempted_at=utc(ctx.envelope.occurred_at), sent_at=utc(ctx.envelope.occurred_at),
    ))
    try:
        effect = effect_of_outcome(CallOutcome(event.outcome), recorded_on=on, promised_date=event.promised_date,
                                   promised_amount=event.promised_amount, rules=ctx.rules.collections.compliance)
    except PromiseError as exc:
        log.warning("promise_not_recorded", account_id=event.account_id, task_id=event.task_id, error=str(exc))
        return
    if effect.phone_reported_wrong:
        case.phone_reported_wrong = True
    if effect.promise is not None and effect.pause_until is not None:
        promise = effect.promise
        session.add(PromiseToPay(
            account_id=event.account_id, task_id=event.task_id, recorded_on=promise.recorded_on,
            promised_date=promise.promised_date, pause_until=effect.pause_until, status="pending",
            promised_amount_fen=to_fen(promise.promised_amount) if promise.promised_amount is not None else None,
        ))
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


HANDLERS: dict[str, Handler | BatchHandler] = {
    "credit.line.granted": BatchHandler(credit_line_granted_batch),  # lines granted in bulk
    "bill.issued": BatchHandler(bill_issued_batch),  # a statement run issues a cycle's bills at once
    "bill.overdue": BatchHandler(bill_overdue_batch),  # the close's overdue bills, a block per chunk
    "bill.charged_off": bill_charged_off,
    # the nightly flood: set-based, the same as account_delinquency_updated one by one
    "account.delinquency.updated": BatchHandler(account_delinquency_updated_batch),
    "account.cured": BatchHandler(account_cured_batch),  # a morning's payments cure thousands
    # every payment: set-based, the same as one by one
    "repayment.applied": BatchHandler(repayment_applied_batch),
    "risk.assessed": BatchHandler(risk_assessed_batch),  # one per snapshot restructuring takes
    "plan.activated": plan_activated,
    "plan.installment.overdue": plan_installment_overdue,
    "plan.installment.paid": plan_installment_paid,
    "plan.defaulted": plan_defaulted,
    "plan.completed": plan_completed,
    "collection.outcome.recorded": collection_outcome_recorded,
    "sms.delivery.reported": sms_delivery_reported,
}
