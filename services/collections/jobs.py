"""Collections' scheduled jobs: the daily strategy run and the contact dispatcher.

``collections_daily`` (beat 08:00; by hand for any date) decides each case's actions for
the business date with the domain strategy: SMS contacts are *queued* for the day's
window, tasks are created at once, stage changes escalate. Idempotent per (case, date,
kind, template): a re-run plans nothing twice.

``contact_dispatch`` (every minute 08:00–21:00; by hand with --date and --at) sends the
queued contacts due at the job's instant, each re-checked by the compliance guard just
before it goes out. Each contact is its own short transaction, and the gateway call
happens between two of them (never inside one), so a slow provider holds no locks.

Both work in bounded slices (JobResult.more) so each Celery task stays short.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.collections.casebook import (
    Emit,
    aware,
    case_facts,
    contact_history,
    strategy_and_templates,
    suppress,
    utc,
)
from services.collections.domain import (
    ActionKind,
    CaseView,
    Channel,
    ContactRequest,
    PlannedAction,
    Promise,
    PromiseState,
    Stage,
    TemplateCatalog,
    actions_for_day,
    case_block_reason,
    check_contact,
    is_escalation,
    mask_phone,
    promise_state,
    render,
)
from services.collections.domain.compliance import cap_reason
from services.collections.models import (
    Bill,
    CaseStageHistory,
    CollectionCase,
    CollectorTask,
    ContactAttempt,
    Customer,
    PromiseToPay,
    Repayment,
    SmsMessage,
)
from services.collections.sms_gateway import GatewayReceipt, OutgoingSms, SmsGateway, gateway_from_settings
from shared.clock import at_local
from shared.db import is_postgres, transaction
from shared.events import payloads as p
from shared.jobs import JobContext, JobResult
from shared.log import get_logger
from shared.money import from_fen

log = get_logger(__name__)

CASES_PER_SLICE = 500
CONTACTS_PER_SLICE = 100
MAX_SEND_ATTEMPTS = 5  # dispatch runs that found the gateway down before a contact fails
RETRY_AFTER = timedelta(minutes=1)
# A contact handed to the gateway less than this long ago is in flight in another
# dispatcher (runs can overlap): left alone. Older, its dispatcher died: resent with the
# same message_id, which the gateway dedups.
IN_FLIGHT = timedelta(minutes=2)

# How long people have for a task (business days after it is created): a call the
# same day, an agency referral or a legal file within the working week.
TASK_DUE_DAYS = {"call": 0, "agency": 3, "legal": 5}
_MESSAGE_ID_NAMESPACE = uuid.UUID("9a4d8d4e-3c1b-4f7e-9a55-6c0f1f3e2b10")


def _emitter(ctx: JobContext, session: Session, at: datetime) -> Emit:
    """Emit into this job's transaction, stamped with the job's instant (not the wall clock)."""
    def emit(event_type: str, payload: p.Payload, aggregate_id: str) -> str:
        return ctx.outbox.emit(session, event_type, payload, aggregate_id=aggregate_id, occurred_at=at)
    return emit


def _window_start(ctx: JobContext) -> datetime:
    return at_local(ctx.business_date, ctx.rules.collections.compliance.window_start)


# =============================================================================================
# collections-daily
# =============================================================================================

def collections_daily(ctx: JobContext) -> JobResult:
    """Decide every open case's actions for the business date (one slice of cases)."""
    after = int(ctx.state.get("after_pk", 0))
    totals: dict[str, int] = {k: int(v) for k, v in ctx.state.get("totals", {}).items()}
    with transaction(ctx.engine) as session:
        # Only cases with something to collect: an open case with no collectable bill and no
        # active plan has no facts (case_facts returns None) and would cost its queries for
        # nothing; every credit line has a case, so that was most of the portfolio each day.
        collectable = select(Bill.bill_id).where(
            Bill.account_id == CollectionCase.account_id, Bill.unpaid_fen > 0, Bill.plan_id.is_(None),
        ).exists()
        cases = session.scalars(select(CollectionCase).where(
            CollectionCase.pk > after,
            or_(CollectionCase.plan_active.is_(True), (CollectionCase.status == "open") & collectable),
        ).order_by(CollectionCase.pk).limit(CASES_PER_SLICE)).all()
        for case in cases:
            for key, count in _run_case(ctx, session, case).items():
                totals[key] = totals.get(key, 0) + count
    more = len(cases) == CASES_PER_SLICE
    state = {"after_pk": cases[-1].pk if cases else after, "totals": totals}
    return JobResult(summary={"cases": len(cases), **totals}, more=more, state=state)


def _run_case(ctx: JobContext, session: Session, case: CollectionCase) -> dict[str, int]:
    """One case for one day: judge promises, track the stage, plan the day's actions."""
    rules = ctx.rules.collections
    strategy, _ = strategy_and_templates(rules)
    emit = _emitter(ctx, session, _planning_instant(ctx))
    facts = case_facts(session, case, ctx.business_date, rules)
    if facts is None:
        return {}
    counts: dict[str, int] = {}
    if _judge_promises(session, case, facts.view, ctx):
        facts = case_facts(session, case, ctx.business_date, rules)
        assert facts is not None
    if case.status == "open" and not case.plan_active:
        counts["escalations"] = _track_stage(session, emit, case, facts.view.stage, ctx.business_date)
    actions = actions_for_day(facts.view, ctx.business_date, strategy)
    for action in actions:
        if action.kind.is_message:
            counts["contacts_queued"] = counts.get("contacts_queued", 0) + _queue_message(
                session, case, action, facts.bill.bill_id if facts.bill else None, ctx)
        else:
            created = _create_task(session, emit, case, facts.view, action, facts.amount_fen, ctx)
            counts["tasks_created"] = counts.get("tasks_created", 0) + created
    if case.promise_broken and actions:
        case.promise_broken = False  # acted on: the next action was brought forward today
    return counts


def _planning_instant(ctx: JobContext) -> datetime:
    """When the day's plan is made: the --at time when given, else the window's opening."""
    return ctx.instant if ctx.at else _window_start(ctx)


def _judge_promises(session: Session, case: CollectionCase, view: CaseView, ctx: JobContext) -> bool:
    """Decide pending promises whose pause is over: kept, or broken (escalate at once)."""
    changed = False
    promises = session.scalars(select(PromiseToPay).where(
        PromiseToPay.account_id == case.account_id, PromiseToPay.status == "pending")).all()
    for promise in promises:
        repaid = sum(session.scalars(select(Repayment.amount_fen).where(
            Repayment.account_id == case.account_id, Repayment.applied_on >= promise.recorded_on)).all())
        state = promise_state(
            Promise(promise.recorded_on, promise.promised_date,
                    from_fen(promise.promised_amount_fen) if promise.promised_amount_fen is not None else None),
            ctx.business_date, still_overdue=view.dpd > 0 and not view.cured,
            repaid_since_promise=from_fen(repaid), rules=ctx.rules.collections.compliance)
        if state is PromiseState.PENDING:
            continue
        promise.status, promise.decided_on = state.value, ctx.business_date
        if state is PromiseState.BROKEN:
            case.promise_broken = True
            log.info("promise_broken", account_id=case.account_id, business_date=str(ctx.business_date))
        changed = True
    return changed


def _track_stage(session: Session, emit: Emit, case: CollectionCase, stage: Stage, on: date) -> int:
    """Record the stage; moving forward emits collection.escalated (once: the stage is stored)."""
    if case.stage == stage.value:
        return 0
    previous = Stage(case.stage) if case.stage else None
    case.stage = stage.value
    session.add(CaseStageHistory(account_id=case.account_id, business_date=on, stage=stage.value))
    if previous is None or not is_escalation(previous, stage):
        return 0
    emit("collection.escalated", p.CollectionEscalated(
        account_id=case.account_id, from_stage=previous.value, to_stage=stage.value, business_date=on,
    ), case.account_id)
    return 1


def _plan_key(account_id: str, on: date, kind: str, template: str) -> str:
    return f"{account_id}|{on.isoformat()}|{kind}|{template}"


def _queue_message(session: Session, case: CollectionCase, action: PlannedAction, bill_id: str | None,
                   ctx: JobContext) -> int:
    """Queue an SMS for the day's window (the guard judges it just before sending)."""
    assert action.template is not None
    key = _plan_key(case.account_id, ctx.business_date, action.kind.value, action.template)
    if session.scalar(select(ContactAttempt.id).where(ContactAttempt.plan_key == key)) is not None:
        return 0
    session.add(ContactAttempt(
        plan_key=key, account_id=case.account_id, business_date=ctx.business_date, channel="sms",
        kind=action.kind.value, template=action.template, stage=action.stage.value, dpd=action.dpd,
        trigger=action.trigger.value, bill_id=bill_id, status="queued",
        planned_for=utc(_planning_instant(ctx)), deferrals=0, send_attempts=0,
    ))
    return 1


def _create_task(session: Session, emit: Emit, case: CollectionCase, view: CaseView, action: PlannedAction,
                 amount_fen: int, ctx: JobContext) -> int:
    """A call, agency or legal task (collection.task.created). A call task is first put to the
    guard's time-independent checks and the call caps: a suppressed one is recorded."""
    kind = action.kind.value
    key = _plan_key(case.account_id, ctx.business_date, kind, kind)
    if session.scalar(select(ContactAttempt.id).where(ContactAttempt.plan_key == key)) is not None:
        return 0
    if session.scalar(select(CollectorTask.task_id).where(
            CollectorTask.account_id == case.account_id, CollectorTask.created_on == ctx.business_date,
            CollectorTask.kind == kind)) is not None:
        return 0
    if action.kind is ActionKind.CALL:
        reason = _call_block_reason(session, case, view, ctx)
        if reason is not None:
            attempt = _task_record(case, action, ctx, key, status="suppressed", task_id=None)
            session.add(attempt)
            suppress(emit, attempt, reason)
            return 0
    task_id = str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, key))
    for older in session.scalars(select(CollectorTask).where(
            CollectorTask.account_id == case.account_id, CollectorTask.kind == kind,
            CollectorTask.status == "open")).all():
        older.status = "superseded"
    due_by = ctx.business_date + timedelta(days=TASK_DUE_DAYS.get(kind, 0))
    session.add(CollectorTask(
        task_id=task_id, account_id=case.account_id, kind=kind, stage=action.stage.value, dpd=action.dpd,
        amount_fen=amount_fen, trigger=action.trigger.value, created_on=ctx.business_date, due_by=due_by,
        status="open",
    ))
    session.add(_task_record(case, action, ctx, key, status="task_created", task_id=task_id))
    emit("collection.task.created", p.CollectionTaskCreated(
        task_id=task_id, account_id=case.account_id, kind=kind, stage=action.stage.value, due_by=due_by,  # type: ignore[arg-type]
    ), case.account_id)
    return 1


def _task_record(case: CollectionCase, action: PlannedAction, ctx: JobContext, key: str, *, status: str,
                 task_id: str | None) -> ContactAttempt:
    """The contact history line of a task decision (created or suppressed)."""
    kind = action.kind.value
    return ContactAttempt(
        plan_key=key, account_id=case.account_id, business_date=ctx.business_date,
        channel="call" if action.kind is ActionKind.CALL else kind, kind=kind, template=kind,
        stage=action.stage.value, dpd=action.dpd, trigger=action.trigger.value, task_id=task_id,
        status=status, planned_for=utc(_planning_instant(ctx)), deferrals=0, send_attempts=0,
    )


def _call_block_reason(session: Session, case: CollectionCase, view: CaseView, ctx: JobContext) -> str | None:
    """Whether collectors may call today at all: whose phone, the case state, the call caps."""
    customer = session.get(Customer, case.account_id)
    request = ContactRequest(kind=ActionKind.CALL, phone=customer.phone if customer else "")
    blocked = case_block_reason(request, view, ctx.business_date)
    if blocked is not None:
        return blocked.value
    capped = cap_reason(Channel.CALL, contact_history(session, case.account_id), ctx.business_date,
                        ctx.rules.collections.compliance)
    return capped.value if capped is not None else None


# =============================================================================================
# contact-dispatch
# =============================================================================================

@dataclass(frozen=True)
class Prepared:
    """A contact that passed the guard and is about to go to the gateway."""

    contact_id: int
    sms: OutgoingSms


def dispatch_instant(ctx: JobContext) -> datetime:
    """The moment the dispatcher acts as: --at when given; beat gives no --at, so then the
    job clock's now when it is on the business date; else (a past date by hand) the window's
    opening of that date."""
    if ctx.at:
        return ctx.instant
    now = ctx.clock.now()
    if at_local(ctx.business_date, "00:00") <= now < at_local(ctx.business_date + timedelta(days=1), "00:00"):
        return now
    return _window_start(ctx)


def contact_dispatch(ctx: JobContext, gateway: SmsGateway | None = None) -> JobResult:
    """Send the queued contacts due at the job's instant (one slice)."""
    now = dispatch_instant(ctx)
    gateway = gateway or gateway_from_settings(ctx.settings)
    with transaction(ctx.engine) as session:
        query = select(ContactAttempt.id).where(
            ContactAttempt.channel == "sms", ContactAttempt.status.in_(("queued", "sending")),
            ContactAttempt.planned_for <= utc(now),
        ).order_by(ContactAttempt.planned_for, ContactAttempt.id).limit(CONTACTS_PER_SLICE)
        ids = list(session.scalars(query).all())
    totals: dict[str, int] = {}
    for contact_id in ids:
        outcome = _dispatch_one(ctx, contact_id, now, gateway)
        totals[outcome] = totals.get(outcome, 0) + 1
    return JobResult(summary={"at": now.isoformat(), "contacts": len(ids), **totals},
                     more=len(ids) == CONTACTS_PER_SLICE)


def _dispatch_one(ctx: JobContext, contact_id: int, now: datetime, gateway: SmsGateway) -> str:
    """Guard, then send, then record: three steps, the gateway call outside any transaction."""
    prepared = _prepare(ctx, contact_id, now)
    if isinstance(prepared, str):
        return prepared
    receipt = gateway.send(prepared.sms)
    return _record_send(ctx, prepared, receipt, now)


def _lock_contact(session: Session, contact_id: int) -> ContactAttempt | None:
    query = select(ContactAttempt).where(ContactAttempt.id == contact_id)
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    return session.scalar(query)


def _prepare(ctx: JobContext, contact_id: int, now: datetime) -> Prepared | str:
    """Re-check the contact with the compliance guard; suppress, defer, or get it ready."""
    rules = ctx.rules.collections
    with transaction(ctx.engine) as session:
        contact = _lock_contact(session, contact_id)
        if contact is None or contact.status not in ("queued", "sending"):
            return "skipped"
        if contact.status == "sending" and contact.attempted_at is not None \
                and aware(contact.attempted_at) > now - IN_FLIGHT:  # type: ignore[operator]
            return "in_flight"
        emit = _emitter(ctx, session, now)
        case = session.scalar(select(CollectionCase).where(CollectionCase.account_id == contact.account_id))
        facts = case_facts(session, case, ctx.business_date, rules, contact_bill_id=contact.bill_id) if case else None
        if facts is None:
            suppress(emit, contact, "cured")
            return "suppressed"
        customer = session.get(Customer, contact.account_id)
        request = ContactRequest(kind=ActionKind(contact.kind), phone=customer.phone if customer else "",
                                 template=contact.template)
        history = contact_history(session, contact.account_id, exclude_id=contact.id)
        decision = check_contact(request, history, facts.view, now, rules.compliance)
        if decision.deferred:
            assert decision.next_window_start is not None and decision.reason is not None
            contact.planned_for = utc(decision.next_window_start)
            contact.deferrals += 1
            contact.reason = decision.reason.value
            emit("contact.suppressed", p.ContactSuppressed(
                account_id=contact.account_id, channel=contact.channel, template=contact.template,
                reason=decision.reason.value), contact.account_id)
            return "deferred"
        if not decision.allowed:
            assert decision.reason is not None
            suppress(emit, contact, decision.reason.value)
            return "suppressed"
        assert customer is not None
        sms = _message_for(session, contact, customer, facts, ctx)
        contact.status, contact.attempted_at, contact.message_id = "sending", utc(now), sms.message_id
        contact.send_attempts += 1
        return Prepared(contact.id, sms)


def _message_for(session: Session, contact: ContactAttempt, customer: Customer, facts: Any,
                 ctx: JobContext) -> OutgoingSms:
    """Render the template (masked name only) and keep the message; a retry reuses it."""
    existing = session.scalar(select(SmsMessage).where(SmsMessage.contact_id == contact.id))
    if existing is not None:
        return OutgoingSms(existing.message_id, customer.phone, existing.text, existing.segments)
    _, catalog = strategy_and_templates(ctx.rules.collections)
    rendered = _render(session, catalog, contact, customer, facts, ctx)
    message_id = str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, f"contact:{contact.id}:{contact.plan_key}"))
    session.add(SmsMessage(
        message_id=message_id, idempotency_key=message_id, contact_id=contact.id, account_id=contact.account_id,
        template=contact.template, phone_masked=mask_phone(customer.phone), text=rendered.text,
        segments=rendered.segments, status="queued", gateway_attempts=0,
    ))
    return OutgoingSms(message_id, customer.phone, rendered.text, rendered.segments)


def _render(session: Session, catalog: TemplateCatalog, contact: ContactAttempt, customer: Customer,
            facts: Any, ctx: JobContext) -> Any:
    """The text with today's figures: the amount due now, its due date, today's DPD."""
    compliance = ctx.rules.collections.compliance
    due_on: date | None = None
    if contact.kind == "plan_reminder" and facts.installment is not None:
        due_on = facts.installment.due_date
    else:
        bill = session.get(Bill, contact.bill_id) if contact.bill_id else facts.bill
        due_on = bill.due_date if bill is not None else None
    fields = {
        "name": customer.name,
        "amount": from_fen(facts.amount_fen),
        "due_date": due_on or ctx.business_date,
        "dpd": max(facts.view.dpd, 0),
        "link": ctx.settings.sms_repayment_link,
    }
    template = catalog.get(contact.template)
    return render(template, {k: v for k, v in fields.items() if k in template.fields},
                  single_segment_chars=compliance.sms_segment_chars,
                  concat_segment_chars=compliance.sms_concat_segment_chars)


def _record_send(ctx: JobContext, prepared: Prepared, receipt: GatewayReceipt, now: datetime) -> str:
    """What the gateway said: sent (reminder.sent), failed for good, or retry next run."""
    with transaction(ctx.engine) as session:
        contact = session.get(ContactAttempt, prepared.contact_id, with_for_update=True)
        message = session.get(SmsMessage, prepared.sms.message_id)
        assert contact is not None and message is not None
        if contact.status != "sending" or contact.message_id != message.message_id:
            return "skipped"  # another dispatcher already recorded it
        emit = _emitter(ctx, session, now)
        message.gateway_attempts += receipt.attempts
        message.gateway_response = receipt.response[:1000]
        if receipt.accepted:
            contact.status, contact.sent_at, contact.reason = "sent", utc(now), None
            message.status, message.sent_at = "sent", utc(now)
            emit("reminder.sent", p.ReminderSent(
                message_id=message.message_id, account_id=contact.account_id, channel="sms",
                template=contact.template, stage=contact.stage, business_date=ctx.business_date,
                sent_at=now, segments=message.segments), contact.account_id)
            return "sent"
        if receipt.permanent or contact.send_attempts >= MAX_SEND_ATTEMPTS:
            contact.status, contact.reason = "failed", "gateway_rejected" if receipt.permanent else "gateway_down"
            message.status = "failed"
            log.warning("sms_failed", message_id=message.message_id, account_id=contact.account_id,
                        reason=contact.reason)
            return "failed"
        contact.status, contact.planned_for = "queued", utc(now + RETRY_AFTER)
        return "retry"
