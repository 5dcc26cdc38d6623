"""Collections' scheduled jobs: the daily strategy run and the contact dispatcher.

``collections_daily`` (beat 08:00; by hand for any date) decides each case's actions for
the business date with the domain strategy: SMS contacts are *queued* for the day's
window, tasks are created at once, stage changes escalate. Idempotent per (case, date,
kind, template): a re-run plans nothing twice. A run for T after missed dates runs each of
them first, in order, each once (``job_runs``), without late contacts; every case whose
overdue bill has no pre-report notice yet gets one on T: the notice SMS, or a letter task
when no own phone is known (``domain/notices.py``, RULES 6.10 and 6.11).

``contact_dispatch`` (every minute 08:00–21:00; by hand with --date and --at) sends the
queued contacts due at the job's instant, each re-checked by the compliance guard just
before it goes out (one due on a missed date is suppressed ``past_date``, except the
notice; a notice SMS handed to the gateway emits ``collection.notice.sent``). Each
contact is its own short transaction, and the gateway call happens between two of them
(never inside one), so a slow provider holds no locks.

Both work in bounded slices (JobResult.more) so each Celery task stays short.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from services.collections.casebook import (
    CaseFacts,
    Emit,
    SliceFacts,
    aware,
    contact_histories,
    history_view,
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
from services.collections.domain.compliance import SuppressionReason, cap_reason, is_own_phone
from services.collections.domain.notices import (
    LETTER_DUE_DAYS,
    SKIPPED_PAST_DATE,
    BillNotice,
    NoticeChannel,
    bills_awaiting_notice,
    contacts_on,
    dates_to_run,
    notice_channel,
)
from services.collections.models import (
    Bill,
    CaseStageHistory,
    CollectionCase,
    CollectorTask,
    ContactAttempt,
    Customer,
    JobRun,
    PromiseToPay,
    Repayment,
    SmsMessage,
)
from services.collections.sms_gateway import (
    GatewayReceipt,
    OutgoingSms,
    SmsGateway,
    gateway_from_settings,
)
from shared.bus.outbox import PendingEvent, payload_json
from shared.clock import at_local
from shared.db import transaction
from shared.events import payloads as p
from shared.job_runs import JobLease, last_done
from shared.jobs import JobContext, JobResult
from shared.log import get_logger
from shared.money import from_fen

log = get_logger(__name__)

JOB = "collections-daily"

# A slice is one Celery task: a fraction of a second of work (2,000 cases are ~0.3 s on
# PostgreSQL), far inside a slice's time limit (shared/job_timing.py); smaller slices spend more on
# task round trips than on cases (the simulator measured 20 round trips a day at 500).
CASES_PER_SLICE = 2000
# Contacts go one by one to the SMS gateway: 500 at the HTTP gateway's timeout budget
# still fit well inside SEND_BUDGET, and what does not is put back unsent anyway.
CONTACTS_PER_SLICE = 500
# Fewer contacts due than this: the dispatcher sends them in one chain, not fanned out
# (``dispatch_worth_fanning_out``).
FAN_OUT_FROM_CONTACTS = 100
MAX_SEND_ATTEMPTS = 5  # dispatch runs that found the gateway down before a contact fails
RETRY_AFTER = timedelta(minutes=1)
# A contact handed to the gateway less than this long ago is in flight in another
# dispatcher (runs can overlap): left alone. Older, its dispatcher died: resent with the
# same message_id, which the gateway dedups.
IN_FLIGHT = timedelta(minutes=2)
# A run of contacts is claimed together; what is not handed to the gateway within this
# long of the claim goes back to the queue unsent (well before IN_FLIGHT runs out).
SEND_BUDGET = IN_FLIGHT.total_seconds() / 2

# How long people have for a task (business days after it is created): a call the
# same day, an agency referral or a legal file within the working week.
TASK_DUE_DAYS = {"call": 0, "agency": 3, "legal": 5, "letter": LETTER_DUE_DAYS}
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
    """Run every date from the day after the last one done up to ``ctx.business_date``,
    in order (``dates_to_run``), each date once (its ``job_runs`` row), a slice of cases
    at a time; the summary adds the dates' figures up and lists the dates.

    A missed date's run plans no contacts (``contacts_on``): what it would have planned
    is counted as skipped, the notice owed is given on the business date itself."""
    state = dict(ctx.state)
    job = _job_name(ctx)
    if "dates" not in state:
        with transaction(ctx.engine) as session:
            last = _last_done(session, job)
        dates = dates_to_run(last, ctx.business_date)
        state.update(
            run=state.get("run") or ctx.run or uuid.uuid4().hex,
            dates=[d.isoformat() for d in dates],
            ran=[],
            after_pk=0,
            totals={},
            day_totals={},
        )
    lease = JobLease(JobRun, job, state["run"])
    budget = CASES_PER_SLICE
    while state["dates"]:
        day = date.fromisoformat(state["dates"][0])
        with transaction(ctx.engine) as session:
            lease.acquire(session, day, ctx.clock.now())
        day_ctx = replace(ctx, business_date=day, at=ctx.at if day == ctx.business_date else None)
        cases, counts = _daily_slice(
            day_ctx, int(state["after_pk"]), budget, contacts=contacts_on(day, ctx.business_date)
        )
        for key, count in counts.items():
            state["day_totals"][key] = state["day_totals"].get(key, 0) + count
        budget -= len(cases)
        if len(cases) and budget <= 0:  # the slice's share of cases is used up: go on in the next one
            state["after_pk"] = cases[-1].pk
            return JobResult(summary=_daily_summary(state, in_progress=day), more=True, state=state)
        with transaction(ctx.engine) as session:
            lease.finish(session, day, state["day_totals"], ctx.clock.now())
        for key, count in state["day_totals"].items():
            state["totals"][key] = state["totals"].get(key, 0) + count
        state["ran"].append(day.isoformat())
        state.update(dates=state["dates"][1:], after_pk=0, day_totals={})
    return JobResult(summary=_daily_summary(state))


def _job_name(ctx: JobContext) -> str:
    """The ``job_runs`` name of this chain: the job's, or its share's when partitioned
    (each chain of a fan-out runs the missed dates of its own share of the cases)."""
    if ctx.partition is None:
        return JOB
    index, count = ctx.partition
    return f"{JOB}#{index}/{count}"


def _last_done(session: Session, job: str) -> date | None:
    """The latest date done by this chain's name or by the whole job's."""
    days = [d for d in (last_done(session, JobRun, job), last_done(session, JobRun, JOB)) if d is not None]
    return max(days) if days else None


def _daily_summary(state: dict[str, Any], in_progress: date | None = None) -> dict[str, Any]:
    """The run so far: the figures of the dates done, added up, and which dates they were."""
    totals = {k: int(v) for k, v in state["totals"].items()}
    if in_progress is not None:
        for key, count in state["day_totals"].items():
            totals[key] = totals.get(key, 0) + int(count)
    summary: dict[str, Any] = {"cases": 0, **totals, "dates_run": list(state["ran"])}
    skipped = totals.get(f"contacts_skipped_{SKIPPED_PAST_DATE}", 0)
    if skipped:
        summary["skipped"] = (
            f"{skipped} contacts due on missed dates were not made late ({SKIPPED_PAST_DATE}); "
            "a pending pre-report notice goes out on the business date"
        )
    if in_progress is not None:
        summary["in_progress"] = in_progress.isoformat()
    return summary


def _daily_slice(
    ctx: JobContext, after: int, limit: int, *, contacts: bool
) -> tuple[list[CollectionCase], dict[str, int]]:
    """Decide up to ``limit`` open cases' actions for ``ctx.business_date``, after case ``after``.

    Set-based: the slice's facts are read in a few queries (:class:`SliceFacts`, the day's
    plan keys and tasks, the open tasks, the call history), the domain runs per case in
    memory, and what it decided is written in bulk when the transaction flushes (the
    events with one insert, in the order the cases were decided)."""
    with transaction(ctx.engine) as session:
        cases = list(
            session.scalars(
                select(CollectionCase)
                .where(
                    CollectionCase.pk > after,
                    _something_to_do(ctx),
                    *_in_share(ctx, CollectionCase.pk),
                )
                .order_by(CollectionCase.pk)
                .limit(limit)
            ).all()
        )
        emit = _BufferedEmit(_planning_instant(ctx))
        counts = _run_slice(ctx, session, cases, emit, contacts=contacts)
        emit.flush(ctx, session)
    counts["cases"] = counts.get("cases", 0) + len(cases)
    return cases, counts


def _in_share(ctx: JobContext, case_pk: Any) -> list[Any]:
    """The condition that keeps a partitioned chain to its share of the accounts
    (``JobContext.partition``: the case pk modulo the count); none for the whole run.

    Everything either job decides for an account reads only that account's rows (its
    case, bills, promises, tasks and contact history), so the shares are independent."""
    if ctx.partition is None:
        return []
    index, count = ctx.partition
    return [func.coalesce(case_pk, 0) % count == index]


def _something_to_do(ctx: JobContext) -> Any:
    """The cases the day's run can change, as a condition on ``cases``.

    Every credit line has a case, and most of them on most days are open with a bill not
    due for a week or more: the run would read their facts and decide nothing. Left out:
    - an open case with no collectable bill and no active plan (no facts at all);
    - a case already in pre-due whose oldest collectable bill is due after the first day
      any pre-due rule can act (``Strategy.first_pre_due_dpd``, D-3), with no promise
      pending or broken: no message or task fires before that DPD, its stage is already
      recorded, and there is no promise to judge or action to bring forward.
    Taking them anyway leaves the same rows and events (the test holds the two runs equal)."""
    strategy, _ = strategy_and_templates(ctx.rules.collections)
    bills_due_by = ctx.business_date - timedelta(days=strategy.first_pre_due_dpd())  # DPD >= first ⇔ due <= this

    def collectable(*more: Any) -> Any:
        return (
            select(Bill.bill_id)
            .where(
                Bill.account_id == CollectionCase.account_id,
                Bill.unpaid_fen > Bill.disputed_fen + ctx.rules.overdue.arrears_tolerance_fen,
                Bill.plan_id.is_(None),
                *more,
            )
            .exists()
        )

    promise_pending = (
        select(PromiseToPay.id)
        .where(PromiseToPay.account_id == CollectionCase.account_id, PromiseToPay.status == "pending")
        .exists()
    )
    acting_today = or_(
        CollectionCase.stage.is_(None),
        CollectionCase.stage != Stage.PRE_DUE.value,
        CollectionCase.promise_broken.is_(True),
        promise_pending,
        collectable(Bill.due_date <= bills_due_by),
    )
    return or_(CollectionCase.plan_active.is_(True), (CollectionCase.status == "open") & collectable() & acting_today)


class _BufferedEmit:
    """An Emit that keeps the events and writes them with one insert (in emission order)."""

    def __init__(self, at: datetime):
        self.at = at
        self.events: list[PendingEvent] = []

    def __call__(self, event_type: str, payload: p.Payload, aggregate_id: str) -> str:
        event = PendingEvent(event_type, aggregate_id, payload_json(event_type, payload), self.at)
        self.events.append(event)
        return event.event_id

    def flush(self, ctx: JobContext, session: Session) -> None:
        if self.events:
            ctx.outbox.emit_many(session, self.events)
            self.events = []


@dataclass
class _DayState:
    """What the day's run of a slice must know beyond the cases' facts, read up front."""

    plan_keys: set[str]  # plan keys already recorded (and those added by this run)
    tasks_today: set[tuple[str, str]]  # (account, kind) of tasks created on the business date
    open_tasks: dict[tuple[str, str], list[CollectorTask]]  # (account, kind) -> open tasks
    histories: dict[str, list[tuple[int, str, datetime]]]  # call caps: contact history rows


def _run_slice(
    ctx: JobContext, session: Session, cases: list[CollectionCase], emit: _BufferedEmit, *, contacts: bool = True
) -> dict[str, int]:
    """The slice's cases for one day, in pk order: judge promises, track the stage, plan.

    ``contacts`` False (a missed date run late): the stage is tracked as of the day, but
    the day's planned actions are only counted as skipped, and no notice is planned."""
    rules = ctx.rules.collections
    strategy, _ = strategy_and_templates(rules)
    slice_facts = SliceFacts.load(session, cases, tolerance_fen=ctx.rules.overdue.arrears_tolerance_fen)
    repayments: dict[str, list[tuple[date, int]]] = {}
    promised = sorted(slice_facts.pending_promises)
    if promised:
        for account_id, applied_on, amount in session.execute(
            select(
                Repayment.account_id,
                Repayment.applied_on,
                Repayment.amount_fen,
            ).where(Repayment.account_id.in_(promised))
        ).all():
            repayments.setdefault(account_id, []).append((applied_on, amount))
    # the domain, per case, in memory (promises judged first: they change the facts)
    decided: list[tuple[CollectionCase, CaseFacts, list[PlannedAction]]] = []
    for case in cases:
        facts = slice_facts.facts(case, ctx.business_date, rules)
        if facts is None:
            continue
        if _judge_promises(
            case,
            slice_facts.pending_promises.get(case.account_id, []),
            repayments.get(case.account_id, []),
            facts.view,
            ctx,
        ):
            facts = slice_facts.facts(case, ctx.business_date, rules)
            assert facts is not None
        decided.append((case, facts, actions_for_day(facts.view, ctx.business_date, strategy)))
    if not contacts:
        missed = {"escalations": 0, f"contacts_skipped_{SKIPPED_PAST_DATE}": 0}
        for case, facts, actions in decided:
            if case.status == "open" and not case.plan_active:
                missed["escalations"] += _track_stage(session, emit, case, facts.view.stage, ctx.business_date)
            missed[f"contacts_skipped_{SKIPPED_PAST_DATE}"] += len(actions)
        return {key: count for key, count in missed.items() if count}
    # what the actions are checked against, for the whole slice at once
    keys = [
        _action_key(case.account_id, ctx.business_date, action) for case, _, actions in decided for action in actions
    ]
    state = _DayState(plan_keys=set(), tasks_today=set(), open_tasks={}, histories={})
    if keys:
        state.plan_keys = set(
            session.scalars(select(ContactAttempt.plan_key).where(ContactAttempt.plan_key.in_(sorted(set(keys))))).all()
        )
    task_accounts = sorted(
        {case.account_id for case, _, actions in decided for action in actions if not action.kind.is_message}
    )
    if task_accounts:
        state.tasks_today = {
            (a, k)
            for a, k in session.execute(
                select(CollectorTask.account_id, CollectorTask.kind).where(
                    CollectorTask.account_id.in_(task_accounts), CollectorTask.created_on == ctx.business_date
                )
            ).all()
        }
        for task in session.scalars(
            select(CollectorTask).where(CollectorTask.account_id.in_(task_accounts), CollectorTask.status == "open")
        ):
            state.open_tasks.setdefault((task.account_id, task.kind), []).append(task)
        call_accounts = {
            case.account_id for case, _, actions in decided for action in actions if action.kind is ActionKind.CALL
        }
        state.histories = contact_histories(session, call_accounts)
    owed = _notices_owed(decided, slice_facts, ctx)
    counts: dict[str, int] = {}
    for case, facts, actions in decided:
        if case.status == "open" and not case.plan_active and not facts.view.paused:
            counts["escalations"] = counts.get("escalations", 0) + _track_stage(
                session, emit, case, facts.view.stage, ctx.business_date
            )
        notice_first = case.account_id in owed and owed[case.account_id][3] is NoticeChannel.SMS
        for action in actions:
            if action.kind.is_message and notice_first:
                # the day's one SMS (RULES 6.5) is the notice owed, which also asks for payment
                counts["contacts_replaced_by_notice"] = counts.get("contacts_replaced_by_notice", 0) + 1
            elif action.kind.is_message:
                counts["contacts_queued"] = counts.get("contacts_queued", 0) + _queue_message(
                    session, state, case, action, facts.bill.bill_id if facts.bill else None, ctx
                )
            else:
                created = _create_task(
                    session, state, emit, case, facts.view, action, facts.amount_fen, slice_facts, ctx
                )
                counts["tasks_created"] = counts.get("tasks_created", 0) + created
        if case.promise_broken and actions:
            case.promise_broken = False  # acted on: the next action was brought forward today
    for key, count in _plan_notices(session, state, emit, owed, slice_facts, ctx).items():
        counts[key] = counts.get(key, 0) + count
    return counts


_Owed = dict[str, tuple[CollectionCase, CaseFacts, list[str], NoticeChannel]]


def _notices_owed(
    decided: list[tuple[CollectionCase, CaseFacts, list[PlannedAction]]], slice_facts: SliceFacts, ctx: JobContext
) -> _Owed:
    """The open cases with an overdue bill not yet noticed (RULES 6.10) that the day's plan
    does not already notify (the strategy's own notice SMS), with the bills and channel."""
    strategy, _ = strategy_and_templates(ctx.rules.collections)
    owed: _Owed = {}
    for case, facts, actions in decided:
        if case.status != "open" or case.plan_active or facts.view.cured or facts.view.paused:
            continue
        bill_ids = bills_awaiting_notice(
            (BillNotice(b.bill_id, b.due_date, b.report_notice_on) for b in slice_facts.bills.get(case.account_id, [])),
            ctx.business_date,
        )
        customer = slice_facts.customers.get(case.account_id)
        channel = notice_channel(is_own_phone(customer.phone if customer else "", facts.view))
        planned_today = any(a.template == strategy.bureau_notice_template for a in actions)
        if bill_ids and (channel is NoticeChannel.LETTER or not planned_today):
            owed[case.account_id] = (case, facts, bill_ids, channel)
    return owed


def _plan_notices(
    session: Session, state: _DayState, emit: Emit, owed: _Owed, slice_facts: SliceFacts, ctx: JobContext
) -> dict[str, int]:
    """Queue the notice SMS of each case owed one (unless an earlier day's is still queued),
    or create its letter task when the customer's own phone is not known."""
    if not owed:
        return {}
    strategy, _ = strategy_and_templates(ctx.rules.collections)
    template = strategy.bureau_notice_template
    keys = {
        account_id: _plan_key(
            account_id, ctx.business_date, channel.value, template if channel is NoticeChannel.SMS else "letter"
        )
        for account_id, (_, _, _, channel) in owed.items()
    }
    planned = state.plan_keys | set(
        session.scalars(select(ContactAttempt.plan_key).where(ContactAttempt.plan_key.in_(sorted(keys.values())))).all()
    )
    queued = set(
        session.scalars(
            select(ContactAttempt.account_id).where(
                ContactAttempt.account_id.in_(sorted(owed)),
                ContactAttempt.template == template,
                ContactAttempt.channel == "sms",
                ContactAttempt.status.in_(("queued", "sending")),
            )
        ).all()
    )
    counts: dict[str, int] = {}
    for account_id, (case, facts, bill_ids, channel) in owed.items():
        key = keys[account_id]
        if key in planned or (channel is NoticeChannel.SMS and account_id in queued):
            continue
        state.plan_keys.add(key)
        if channel is NoticeChannel.SMS:
            session.add(
                ContactAttempt(
                    plan_key=key,
                    account_id=account_id,
                    business_date=ctx.business_date,
                    channel="sms",
                    kind=ActionKind.SMS.value,
                    template=template,
                    stage=facts.view.stage.value,
                    dpd=facts.view.dpd,
                    trigger=NOTICE_TRIGGER,
                    bill_id=bill_ids[0],
                    status="queued",
                    planned_for=utc(_planning_instant(ctx)),
                    deferrals=0,
                    send_attempts=0,
                )
            )
            counts["notices_queued"] = counts.get("notices_queued", 0) + 1
        else:
            _notice_letter(session, emit, case, facts, bill_ids, slice_facts, ctx, key)
            counts["letters_created"] = counts.get("letters_created", 0) + 1
    return counts


# The trigger recorded on a notice planned because an overdue bill had none.
NOTICE_TRIGGER = "pre_report_notice"


def _notice_letter(
    session: Session,
    emit: Emit,
    case: CollectionCase,
    facts: CaseFacts,
    bill_ids: list[str],
    slice_facts: SliceFacts,
    ctx: JobContext,
    key: str,
) -> None:
    """A letter task as the notice (no own phone): created, recorded, and counted as the
    notice of the bills on the day (collection.task.created, collection.notice.sent)."""
    strategy, _ = strategy_and_templates(ctx.rules.collections)
    task_id = str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, key))
    due_by = ctx.business_date + timedelta(days=TASK_DUE_DAYS["letter"])
    stage = facts.view.stage.value
    session.add(
        CollectorTask(
            task_id=task_id,
            account_id=case.account_id,
            kind="letter",
            stage=stage,
            dpd=facts.view.dpd,
            amount_fen=facts.amount_fen,
            trigger=NOTICE_TRIGGER,
            created_on=ctx.business_date,
            due_by=due_by,
            status="open",
        )
    )
    session.add(
        ContactAttempt(
            plan_key=key,
            account_id=case.account_id,
            business_date=ctx.business_date,
            channel="letter",
            kind="letter",
            template=strategy.bureau_notice_template,
            stage=stage,
            dpd=facts.view.dpd,
            trigger=NOTICE_TRIGGER,
            bill_id=bill_ids[0],
            task_id=task_id,
            status="task_created",
            planned_for=utc(_planning_instant(ctx)),
            deferrals=0,
            send_attempts=0,
        )
    )
    for bill in slice_facts.bills.get(case.account_id, []):
        if bill.bill_id in bill_ids:
            bill.report_notice_on = ctx.business_date
    emit(
        "collection.task.created",
        p.CollectionTaskCreated(
            task_id=task_id,
            account_id=case.account_id,
            kind="letter",
            stage=stage,
            due_by=due_by,
        ),
        case.account_id,
    )
    emit(
        "collection.notice.sent",
        p.CollectionNoticeSent(
            notice_id=task_id,
            account_id=case.account_id,
            channel="letter",
            bill_ids=bill_ids,
            business_date=ctx.business_date,
            sent_at=_planning_instant(ctx),
        ),
        case.account_id,
    )


def _planning_instant(ctx: JobContext) -> datetime:
    """When the day's plan is made: the --at time when given, else the window's opening."""
    return ctx.instant if ctx.at else _window_start(ctx)


def _judge_promises(
    case: CollectionCase,
    promises: list[PromiseToPay],
    repayments: list[tuple[date, int]],
    view: CaseView,
    ctx: JobContext,
) -> bool:
    """Decide pending promises whose pause is over: kept, or broken (escalate at once).
    ``promises``: the case's pending promises; ``repayments``: its (applied_on, fen)."""
    changed = False
    for promise in promises:
        if promise.status != "pending":
            continue
        repaid = sum(amount for applied_on, amount in repayments if applied_on >= promise.recorded_on)
        state = promise_state(
            Promise(
                promise.recorded_on,
                promise.promised_date,
                from_fen(promise.promised_amount_fen) if promise.promised_amount_fen is not None else None,
            ),
            ctx.business_date,
            still_overdue=view.dpd > 0 and not view.cured,
            repaid_since_promise=from_fen(repaid),
            rules=ctx.rules.collections.compliance,
        )
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
    emit(
        "collection.escalated",
        p.CollectionEscalated(
            account_id=case.account_id,
            from_stage=previous.value,
            to_stage=stage.value,
            business_date=on,
        ),
        case.account_id,
    )
    return 1


def _plan_key(account_id: str, on: date, kind: str, template: str) -> str:
    return f"{account_id}|{on.isoformat()}|{kind}|{template}"


def _action_key(account_id: str, on: date, action: PlannedAction) -> str:
    """The plan key an action is recorded under (a task's template is its kind)."""
    kind = action.kind.value
    if action.kind.is_message:
        assert action.template is not None
        return _plan_key(account_id, on, kind, action.template)
    return _plan_key(account_id, on, kind, kind)


def _queue_message(
    session: Session,
    state: _DayState,
    case: CollectionCase,
    action: PlannedAction,
    bill_id: str | None,
    ctx: JobContext,
) -> int:
    """Queue an SMS for the day's window (the guard judges it just before sending)."""
    assert action.template is not None
    key = _plan_key(case.account_id, ctx.business_date, action.kind.value, action.template)
    if key in state.plan_keys:
        return 0
    state.plan_keys.add(key)
    session.add(
        ContactAttempt(
            plan_key=key,
            account_id=case.account_id,
            business_date=ctx.business_date,
            channel="sms",
            kind=action.kind.value,
            template=action.template,
            stage=action.stage.value,
            dpd=action.dpd,
            trigger=action.trigger.value,
            bill_id=bill_id,
            status="queued",
            planned_for=utc(_planning_instant(ctx)),
            deferrals=0,
            send_attempts=0,
        )
    )
    return 1


def _create_task(
    session: Session,
    state: _DayState,
    emit: Emit,
    case: CollectionCase,
    view: CaseView,
    action: PlannedAction,
    amount_fen: int,
    slice_facts: SliceFacts,
    ctx: JobContext,
) -> int:
    """A call, agency or legal task (collection.task.created). A call task is first put to the
    guard's time-independent checks and the call caps: a suppressed one is recorded."""
    kind = action.kind.value
    key = _plan_key(case.account_id, ctx.business_date, kind, kind)
    if key in state.plan_keys:
        return 0
    if (case.account_id, kind) in state.tasks_today:
        return 0
    if action.kind is ActionKind.CALL or view.paused:  # a paused account gets no task of any kind
        reason = (
            SuppressionReason.PAUSED.value if view.paused else _call_block_reason(state, case, view, slice_facts, ctx)
        )
        if reason is not None:
            attempt = _task_record(case, action, ctx, key, status="suppressed", task_id=None)
            session.add(attempt)
            state.plan_keys.add(key)
            suppress(emit, attempt, reason)
            return 0
    task_id = str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, key))
    for older in state.open_tasks.pop((case.account_id, kind), []):
        older.status = "superseded"
    due_by = ctx.business_date + timedelta(days=TASK_DUE_DAYS.get(kind, 0))
    task = CollectorTask(
        task_id=task_id,
        account_id=case.account_id,
        kind=kind,
        stage=action.stage.value,
        dpd=action.dpd,
        amount_fen=amount_fen,
        trigger=action.trigger.value,
        created_on=ctx.business_date,
        due_by=due_by,
        status="open",
    )
    session.add(task)
    state.open_tasks[(case.account_id, kind)] = [task]
    state.tasks_today.add((case.account_id, kind))
    session.add(_task_record(case, action, ctx, key, status="task_created", task_id=task_id))
    state.plan_keys.add(key)
    emit(
        "collection.task.created",
        p.CollectionTaskCreated(
            task_id=task_id,
            account_id=case.account_id,
            kind=kind,
            stage=action.stage.value,
            due_by=due_by,  # type: ignore[arg-type]
        ),
        case.account_id,
    )
    return 1


def _task_record(
    case: CollectionCase, action: PlannedAction, ctx: JobContext, key: str, *, status: str, task_id: str | None
) -> ContactAttempt:
    """The contact history line of a task decision (created or suppressed)."""
    kind = action.kind.value
    return ContactAttempt(
        plan_key=key,
        account_id=case.account_id,
        business_date=ctx.business_date,
        channel="call" if action.kind is ActionKind.CALL else kind,
        kind=kind,
        template=kind,
        stage=action.stage.value,
        dpd=action.dpd,
        trigger=action.trigger.value,
        task_id=task_id,
        status=status,
        planned_for=utc(_planning_instant(ctx)),
        deferrals=0,
        send_attempts=0,
    )


def _call_block_reason(
    state: _DayState, case: CollectionCase, view: CaseView, slice_facts: SliceFacts, ctx: JobContext
) -> str | None:
    """Whether collectors may call today at all: whose phone, the case state, the call caps."""
    customer = slice_facts.customers.get(case.account_id)
    request = ContactRequest(kind=ActionKind.CALL, phone=customer.phone if customer else "")
    blocked = case_block_reason(request, view, ctx.business_date)
    if blocked is not None:
        return blocked.value
    capped = cap_reason(
        Channel.CALL,
        history_view(state.histories.get(case.account_id, [])),
        ctx.business_date,
        ctx.rules.collections.compliance,
    )
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
    """Send the queued contacts due at the job's instant (one slice).

    The slice goes in runs of contacts of distinct accounts, in the slice's order: each run
    is claimed and re-checked by the guard in one transaction (a few set-based reads),
    then sent one by one outside any transaction, then recorded in one transaction. A
    run never holds two contacts of one account, so each contact is judged against
    everything recorded for its account before it, exactly as one at a time."""
    now = dispatch_instant(ctx)
    gateway = gateway or gateway_from_settings(ctx.settings)
    with transaction(ctx.engine) as session:
        query = (
            select(ContactAttempt.id, ContactAttempt.account_id)
            .where(
                *_due_contacts(now),
                *_in_share(ctx, _case_pk_of_contact()),
            )
            .order_by(ContactAttempt.planned_for, ContactAttempt.id)
            .limit(CONTACTS_PER_SLICE)
        )
        due = [(contact_id, account_id) for contact_id, account_id in session.execute(query).all()]
    totals: dict[str, int] = {}
    for run in _runs_of_distinct_accounts(due):
        for outcome in _dispatch_run(ctx, run, now, gateway):
            totals[outcome] = totals.get(outcome, 0) + 1
    return JobResult(
        summary={"at": now.isoformat(), "contacts": len(due), **totals}, more=len(due) == CONTACTS_PER_SLICE
    )


def dispatch_worth_fanning_out(ctx: JobContext) -> bool:
    """Fan the dispatcher out only when enough contacts are due for two job processes to
    beat one: most runs after the morning's find a handful (deferred ones, retries), and a
    fan-out costs two more task round trips than sending those in this task."""
    with transaction(ctx.engine) as session:
        due = select(ContactAttempt.id).where(*_due_contacts(dispatch_instant(ctx))).limit(FAN_OUT_FROM_CONTACTS)
        return session.scalar(select(func.count()).select_from(due.subquery())) >= FAN_OUT_FROM_CONTACTS


def _due_contacts(now: datetime) -> list[Any]:
    """The condition of an SMS contact due to go at ``now``."""
    return [
        ContactAttempt.channel == "sms",
        ContactAttempt.status.in_(("queued", "sending")),
        ContactAttempt.planned_for <= utc(now),
    ]


def _case_pk_of_contact() -> Any:
    """The pk of the contact's case (NULL without one: such a contact is share 0's)."""
    return select(CollectionCase.pk).where(CollectionCase.account_id == ContactAttempt.account_id).scalar_subquery()


def _runs_of_distinct_accounts(due: list[tuple[int, str]]) -> list[list[int]]:
    """The contact ids cut, in order, into runs in which no account appears twice."""
    runs: list[list[int]] = []
    seen: set[str] = set()
    for contact_id, account_id in due:
        if not runs or account_id in seen:
            runs.append([])
            seen = set()
        runs[-1].append(contact_id)
        seen.add(account_id)
    return runs


def _dispatch_run(ctx: JobContext, contact_ids: list[int], now: datetime, gateway: SmsGateway) -> list[str]:
    """Guard, then send, then record: the gateway calls outside any transaction."""
    prepared = _prepare_run(ctx, contact_ids, now)
    claimed_at = time.monotonic()
    receipts: list[tuple[Prepared, GatewayReceipt | None]] = []
    try:
        for item in prepared:
            if not isinstance(item, Prepared):
                continue
            if time.monotonic() - claimed_at > SEND_BUDGET:
                # a slow gateway: the rest goes back to the queue unsent rather than sit
                # "sending" until another dispatcher takes it for a dead one
                receipts.append((item, None))
                continue
            receipts.append((item, gateway.send(item.sms)))
    finally:  # what the gateway took is recorded even if a later send blew up
        recorded = _record_sends(ctx, receipts, now) if receipts else {}
    return [recorded.get(item.contact_id, "skipped") if isinstance(item, Prepared) else item for item in prepared]


def _prepare_run(ctx: JobContext, contact_ids: list[int], now: datetime) -> list[Prepared | str]:
    """Claim the run's contacts and re-check each with the compliance guard (in one
    transaction, after the claim): suppress, defer, or get it ready to send."""
    rules = ctx.rules.collections
    with transaction(ctx.engine) as session:
        # SKIP LOCKED: a contact another dispatcher holds is its to send (SQLite, one writer
        # at a time, renders no lock clause)
        query = (
            select(ContactAttempt)
            .where(ContactAttempt.id.in_(contact_ids))
            .order_by(ContactAttempt.id)
            .with_for_update(skip_locked=True)
        )
        claimed = {c.id: c for c in session.scalars(query).all()}
        outcomes: dict[int, Prepared | str] = {}
        ready: list[ContactAttempt] = []
        for contact_id in contact_ids:
            contact = claimed.get(contact_id)
            if contact is None or contact.status not in ("queued", "sending"):
                outcomes[contact_id] = "skipped"
            elif (
                contact.status == "sending"
                and contact.attempted_at is not None
                and aware(contact.attempted_at) > now - IN_FLIGHT
            ):  # type: ignore[operator]
                outcomes[contact_id] = "in_flight"
            else:
                ready.append(contact)
        if ready:
            accounts = sorted({c.account_id for c in ready})
            cases = {
                c.account_id: c
                for c in session.scalars(select(CollectionCase).where(CollectionCase.account_id.in_(accounts))).all()
            }
            slice_facts = SliceFacts.load(
                session,
                list(cases.values()),
                tolerance_fen=ctx.rules.overdue.arrears_tolerance_fen,
                bill_ids=[c.bill_id for c in ready if c.bill_id],
            )
            customers = dict(slice_facts.customers)
            missing = [a for a in accounts if a not in customers]
            if missing:
                customers.update(
                    {
                        c.account_id: c
                        for c in session.scalars(select(Customer).where(Customer.account_id.in_(missing))).all()
                    }
                )
            histories = contact_histories(session, accounts)
            messages = {
                m.contact_id: m
                for m in session.scalars(
                    select(SmsMessage).where(SmsMessage.contact_id.in_([c.id for c in ready]))
                ).all()
            }
            emit = _BufferedEmit(now)
            for contact in ready:
                case = cases.get(contact.account_id)
                facts = (
                    slice_facts.facts(case, ctx.business_date, rules, contact_bill_id=contact.bill_id) if case else None
                )
                outcomes[contact.id] = _judge_contact(
                    ctx,
                    session,
                    emit,
                    contact,
                    facts,
                    customers.get(contact.account_id),
                    histories.get(contact.account_id, []),
                    messages.get(contact.id),
                    slice_facts,
                    now,
                )
            emit.flush(ctx, session)
        return [outcomes[contact_id] for contact_id in contact_ids]


def _judge_contact(
    ctx: JobContext,
    session: Session,
    emit: Emit,
    contact: ContactAttempt,
    facts: CaseFacts | None,
    customer: Customer | None,
    history: list[tuple[int, str, datetime]],
    existing: SmsMessage | None,
    slice_facts: SliceFacts,
    now: datetime,
) -> Prepared | str:
    """The guard's verdict on one claimed contact, recorded on it."""
    rules = ctx.rules.collections
    if facts is None:
        suppress(emit, contact, "cured")
        return "suppressed"
    if _missed(contact, ctx):
        suppress(emit, contact, SKIPPED_PAST_DATE)
        return "suppressed"
    request = ContactRequest(
        kind=ActionKind(contact.kind), phone=customer.phone if customer else "", template=contact.template
    )
    decision = check_contact(request, history_view(history, exclude_id=contact.id), facts.view, now, rules.compliance)
    if decision.deferred:
        assert decision.next_window_start is not None and decision.reason is not None
        contact.planned_for = utc(decision.next_window_start)
        contact.deferrals += 1
        contact.reason = decision.reason.value
        emit(
            "contact.suppressed",
            p.ContactSuppressed(
                account_id=contact.account_id,
                channel=contact.channel,
                template=contact.template,
                reason=decision.reason.value,
            ),
            contact.account_id,
        )
        return "deferred"
    if not decision.allowed:
        assert decision.reason is not None
        suppress(emit, contact, decision.reason.value)
        return "suppressed"
    assert customer is not None
    sms = _message_for(session, contact, customer, facts, existing, slice_facts, ctx)
    contact.status, contact.attempted_at, contact.message_id = "sending", utc(now), sms.message_id
    contact.send_attempts += 1
    return Prepared(contact.id, sms)


def _missed(contact: ContactAttempt, ctx: JobContext) -> bool:
    """A contact that was due on an earlier date and never went (the dispatcher did not
    run then): not made late (RULES 6.11), except the pre-report notice, owed whatever the
    date. A deferred or retried contact is due again today: its planned_for was moved."""
    strategy, _ = strategy_and_templates(ctx.rules.collections)
    return contact.template != strategy.bureau_notice_template and aware(contact.planned_for) < at_local(
        ctx.business_date, "00:00"
    )  # type: ignore[operator]


def _message_for(
    session: Session,
    contact: ContactAttempt,
    customer: Customer,
    facts: CaseFacts,
    existing: SmsMessage | None,
    slice_facts: SliceFacts,
    ctx: JobContext,
) -> OutgoingSms:
    """Render the template (masked name only) and keep the message; a retry reuses it."""
    if existing is not None:
        return OutgoingSms(existing.message_id, customer.phone, existing.text, existing.segments)
    _, catalog = strategy_and_templates(ctx.rules.collections)
    rendered = _render(catalog, contact, customer, facts, slice_facts, ctx)
    message_id = str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, f"contact:{contact.id}:{contact.plan_key}"))
    session.add(
        SmsMessage(
            message_id=message_id,
            idempotency_key=message_id,
            contact_id=contact.id,
            account_id=contact.account_id,
            template=contact.template,
            phone_masked=mask_phone(customer.phone),
            text=rendered.text,
            segments=rendered.segments,
            status="queued",
            gateway_attempts=0,
        )
    )
    return OutgoingSms(message_id, customer.phone, rendered.text, rendered.segments)


def _render(
    catalog: TemplateCatalog,
    contact: ContactAttempt,
    customer: Customer,
    facts: CaseFacts,
    slice_facts: SliceFacts,
    ctx: JobContext,
) -> Any:
    """The text with today's figures: the amount due now, its due date, today's DPD."""
    compliance = ctx.rules.collections.compliance
    due_on: date | None = None
    if contact.kind == "plan_reminder" and facts.installment is not None:
        due_on = facts.installment.due_date
    else:
        bill = slice_facts.bills_by_id.get(contact.bill_id) if contact.bill_id else facts.bill
        due_on = bill.due_date if bill is not None else None
    fields = {
        "name": customer.name,
        "amount": from_fen(facts.amount_fen),
        "due_date": due_on or ctx.business_date,
        "dpd": max(facts.view.dpd, 0),
        "link": ctx.settings.sms_repayment_link,
    }
    template = catalog.get(contact.template)
    return render(
        template,
        {k: v for k, v in fields.items() if k in template.fields},
        single_segment_chars=compliance.sms_segment_chars,
        concat_segment_chars=compliance.sms_concat_segment_chars,
    )


def _record_sends(ctx: JobContext, sent: list[tuple[Prepared, GatewayReceipt | None]], now: datetime) -> dict[int, str]:
    """What the gateway said, for a run in one transaction: sent (reminder.sent), failed
    for good, or retry next run; no receipt: never handed over, queued again as it was."""
    with transaction(ctx.engine) as session:
        ids = [prepared.contact_id for prepared, _ in sent]
        contacts = {
            c.id: c
            for c in session.scalars(
                select(ContactAttempt).where(ContactAttempt.id.in_(ids)).order_by(ContactAttempt.id).with_for_update()
            ).all()
        }
        messages = {
            m.message_id: m
            for m in session.scalars(
                select(SmsMessage).where(SmsMessage.message_id.in_([prepared.sms.message_id for prepared, _ in sent]))
            ).all()
        }
        emit = _BufferedEmit(now)
        outcomes = {
            prepared.contact_id: _record_send(
                ctx, emit, contacts.get(prepared.contact_id), messages.get(prepared.sms.message_id), receipt, now
            )
            for prepared, receipt in sent
        }
        _record_notices(
            ctx,
            session,
            emit,
            [contacts[prepared.contact_id] for prepared, _ in sent if outcomes.get(prepared.contact_id) == "sent"],
            now,
        )
        emit.flush(ctx, session)
        return outcomes


def _record_notices(ctx: JobContext, session: Session, emit: Emit, sent: list[ContactAttempt], now: datetime) -> None:
    """A notice SMS handed to the gateway is the pre-report notice of the account's overdue
    bills not yet noticed (RULES 6.10): recorded on them, announced by collection.notice.sent."""
    strategy, _ = strategy_and_templates(ctx.rules.collections)
    notices = {c.account_id: c for c in sent if c.template == strategy.bureau_notice_template}
    if not notices:
        return
    bills = session.scalars(
        select(Bill)
        .where(
            Bill.account_id.in_(sorted(notices)),
            Bill.unpaid_fen > Bill.disputed_fen + ctx.rules.overdue.arrears_tolerance_fen,
            Bill.plan_id.is_(None),
            Bill.due_date < ctx.business_date,
            Bill.report_notice_on.is_(None),
        )
        .order_by(Bill.account_id, Bill.due_date, Bill.bill_id)
        .with_for_update()
    ).all()
    by_account: dict[str, list[Bill]] = {}
    for bill in bills:
        by_account.setdefault(bill.account_id, []).append(bill)
    for account_id, noticed in by_account.items():
        for bill in noticed:
            bill.report_notice_on = ctx.business_date
        emit(
            "collection.notice.sent",
            p.CollectionNoticeSent(
                notice_id=notices[account_id].message_id or str(notices[account_id].id),
                account_id=account_id,
                channel="sms",
                bill_ids=[b.bill_id for b in noticed],
                business_date=ctx.business_date,
                sent_at=now,
            ),
            account_id,
        )


def _record_send(
    ctx: JobContext,
    emit: Emit,
    contact: ContactAttempt | None,
    message: SmsMessage | None,
    receipt: GatewayReceipt | None,
    now: datetime,
) -> str:
    """What the gateway said about one contact."""
    assert contact is not None and message is not None
    if contact.status != "sending" or contact.message_id != message.message_id:
        return "skipped"  # another dispatcher already recorded it
    if receipt is None:  # not sent (out of time): due again at once, this attempt not counted
        contact.status, contact.send_attempts = "queued", contact.send_attempts - 1
        return "requeued"
    message.gateway_attempts += receipt.attempts
    message.gateway_response = receipt.response[:1000]
    if receipt.accepted:
        contact.status, contact.sent_at, contact.reason = "sent", utc(now), None
        message.status, message.sent_at = "sent", utc(now)
        emit(
            "reminder.sent",
            p.ReminderSent(
                message_id=message.message_id,
                account_id=contact.account_id,
                channel="sms",
                template=contact.template,
                stage=contact.stage,
                business_date=ctx.business_date,
                sent_at=now,
                segments=message.segments,
            ),
            contact.account_id,
        )
        return "sent"
    if receipt.permanent or contact.send_attempts >= MAX_SEND_ATTEMPTS:
        contact.status, contact.reason = "failed", "gateway_rejected" if receipt.permanent else "gateway_down"
        message.status = "failed"
        log.warning("sms_failed", message_id=message.message_id, account_id=contact.account_id, reason=contact.reason)
        return "failed"
    contact.status, contact.planned_for = "queued", utc(now + RETRY_AFTER)
    return "retry"
