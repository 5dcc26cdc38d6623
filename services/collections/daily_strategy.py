"""``collections_daily``, the strategy run (beat 08:00; by hand for any date): decides each
case's actions for the business date with the domain strategy. SMS contacts are *queued*
for the day's window, tasks are created at once, stage changes escalate. Idempotent per
(case, date, kind, template): a re-run plans nothing twice. A run for T after missed dates
runs each of them first, in order, each once (``job_runs``), without late contacts; every
case whose overdue bill has no pre-report notice yet gets one on T (``report_notices``).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.collections.casebook import (
    CaseFacts,
    Emit,
    SliceFacts,
    contact_histories,
    strategy_and_templates,
)
from services.collections.domain import (
    ActionKind,
    CaseView,
    PlannedAction,
    Promise,
    PromiseState,
    Stage,
    actions_for_day,
    is_escalation,
    promise_state,
)
from services.collections.domain.notices import (
    SKIPPED_PAST_DATE,
    NoticeChannel,
    contacts_on,
    dates_to_run,
)
from services.collections.models import (
    Bill,
    CaseStageHistory,
    CollectionCase,
    CollectorTask,
    ContactAttempt,
    JobRun,
    PromiseToPay,
    Repayment,
)
from services.collections.slices import BufferedEmit, in_share, planning_instant
from services.collections.day_plan import DayState, action_key, create_task, queue_message
from services.collections.report_notices import notices_owed, plan_notices
from shared.db import transaction
from shared.events import payloads as p
from shared.job_runs import UNITS, JobLease, Standing, last_done
from shared.jobs import JobContext, JobResult
from shared.log import get_logger
from shared.money import from_fen

log = get_logger(__name__)

JOB = "collections-daily"

# A slice is one Celery task: a fraction of a second of work (2,000 cases are ~0.3 s on
# PostgreSQL), far inside a slice's time limit (shared/job_timing.py); smaller slices spend more on
# task round trips than on cases (the simulator measured 20 round trips a day at 500).
CASES_PER_SLICE = 2000


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
            last = _last_done(session, job, state.get("run") or ctx.run)
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
        standing, cases = _daily_slice(
            day_ctx, lease, _day_progress(state), budget, contacts=contacts_on(day, ctx.business_date)
        )
        if standing.done:  # an earlier delivery of this slice finished the date: its figures stand
            state["day_totals"] = standing.progress
        else:
            state.update(standing.progress)
            budget -= len(cases)
            if len(cases) and budget <= 0:  # the slice's share of cases is used up: go on in the next one
                return JobResult(summary=_daily_summary(state, in_progress=day), more=True, state=state)
            with transaction(ctx.engine) as session:
                lease.finish(session, day, state["day_totals"], ctx.clock.now())
        for key, count in state["day_totals"].items():
            state["totals"][key] = state["totals"].get(key, 0) + count
        state["ran"].append(day.isoformat())
        state.update({"dates": state["dates"][1:], "after_pk": 0, "day_totals": {}, UNITS: 0})
    return JobResult(summary=_daily_summary(state))


def _day_progress(state: dict[str, Any]) -> dict[str, Any]:
    """The progress of the date in hand, as the state carries it (``JobLease.resume``)."""
    return {"after_pk": int(state["after_pk"]), "day_totals": dict(state["day_totals"]), UNITS: state.get(UNITS, 0)}


def _job_name(ctx: JobContext) -> str:
    """The ``job_runs`` name of this chain: the job's, or its share's when partitioned
    (each chain of a fan-out runs the missed dates of its own share of the cases)."""
    if ctx.partition is None:
        return JOB
    index, count = ctx.partition
    return f"{JOB}#{index}/{count}"


def _last_done(session: Session, job: str, run: str | None) -> date | None:
    """The latest date done by this chain's name or by the whole job's, by a run other
    than ``run`` (this run's first slice delivered again finds the dates it began with)."""
    days = [d for d in (last_done(session, JobRun, name, run or None) for name in (job, JOB)) if d is not None]
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
    ctx: JobContext, lease: JobLease, carried: dict[str, Any], limit: int, *, contacts: bool
) -> tuple[Standing, list[CollectionCase]]:
    """Decide up to ``limit`` open cases' actions for ``ctx.business_date``, after the last
    case the date's progress has done, and record the new progress with the work.

    The progress is the one committed with the date's last slice when it is ahead of
    ``carried`` (``JobLease.resume``: a slice delivered again after its worker died);
    a date already done returns as it stands, with no cases.

    Set-based: the slice's facts are read in a few queries (:class:`SliceFacts`, the day's
    plan keys and tasks, the open tasks, the call history), the domain runs per case in
    memory, and what it decided is written in bulk when the transaction flushes (the
    events with one insert, in the order the cases were decided)."""
    with transaction(ctx.engine) as session:
        standing = lease.resume(session, ctx.business_date, carried)
        if standing.done:
            return standing, []
        progress = standing.progress
        cases = list(
            session.scalars(
                select(CollectionCase)
                .where(
                    CollectionCase.pk > int(progress["after_pk"]),
                    _something_to_do(ctx),
                    *in_share(ctx, CollectionCase.pk),
                )
                .order_by(CollectionCase.pk)
                .limit(limit)
            ).all()
        )
        emit = BufferedEmit(planning_instant(ctx))
        counts = _run_slice(ctx, session, cases, emit, contacts=contacts)
        emit.flush(ctx, session)
        counts["cases"] = counts.get("cases", 0) + len(cases)
        totals = dict(progress["day_totals"])
        for key, count in counts.items():
            totals[key] = totals.get(key, 0) + count
        after = cases[-1].pk if cases else int(progress["after_pk"])
        recorded = lease.record(session, ctx.business_date, {**progress, "after_pk": after, "day_totals": totals})
    return Standing(done=False, progress=recorded), cases


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


def _run_slice(
    ctx: JobContext, session: Session, cases: list[CollectionCase], emit: BufferedEmit, *, contacts: bool = True
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
        action_key(case.account_id, ctx.business_date, action) for case, _, actions in decided for action in actions
    ]
    state = DayState(plan_keys=set(), tasks_today=set(), open_tasks={}, histories={})
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
    owed = notices_owed(decided, slice_facts, ctx)
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
                counts["contacts_queued"] = counts.get("contacts_queued", 0) + queue_message(
                    session, state, case, action, facts.bill.bill_id if facts.bill else None, ctx
                )
            else:
                created = create_task(
                    session, state, emit, case, facts.view, action, facts.amount_fen, slice_facts, ctx
                )
                counts["tasks_created"] = counts.get("tasks_created", 0) + created
        if case.promise_broken and actions:
            case.promise_broken = False  # acted on: the next action was brought forward today
    for key, count in plan_notices(session, state, emit, owed, slice_facts, ctx).items():
        counts[key] = counts.get(key, 0) + count
    return counts


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
