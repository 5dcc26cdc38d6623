"""A case's actions on the business date, recorded: its SMS queued for the day's window,
its call, agency or legal task created (a call first put to the guard's time-independent
checks and the call caps), each under its plan key so that a re-run plans nothing twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from services.collections.casebook import (
    Emit,
    SliceFacts,
    history_view,
    suppress,
    utc,
)
from services.collections.domain import (
    ActionKind,
    CaseView,
    Channel,
    ContactRequest,
    PlannedAction,
    case_block_reason,
)
from services.collections.domain.compliance import SuppressionReason, cap_reason
from services.collections.domain.notices import (
    LETTER_DUE_DAYS,
)
from services.collections.models import (
    CollectionCase,
    CollectorTask,
    ContactAttempt,
)
from services.collections.slices import MESSAGE_ID_NAMESPACE, planning_instant
from shared.events import payloads as p
from shared.jobs import JobContext


# How long people have for a task (business days after it is created): a call the
# same day, an agency referral or a legal file within the working week.
TASK_DUE_DAYS = {"call": 0, "agency": 3, "legal": 5, "letter": LETTER_DUE_DAYS}


@dataclass
class DayState:
    """What the day's run of a slice must know beyond the cases' facts, read up front."""

    plan_keys: set[str]  # plan keys already recorded (and those added by this run)
    tasks_today: set[tuple[str, str]]  # (account, kind) of tasks created on the business date
    open_tasks: dict[tuple[str, str], list[CollectorTask]]  # (account, kind) -> open tasks
    histories: dict[str, list[tuple[int, str, datetime]]]  # call caps: contact history rows


def plan_key(account_id: str, on: date, kind: str, template: str) -> str:
    return f"{account_id}|{on.isoformat()}|{kind}|{template}"


def action_key(account_id: str, on: date, action: PlannedAction) -> str:
    """The plan key an action is recorded under (a task's template is its kind)."""
    kind = action.kind.value
    if action.kind.is_message:
        assert action.template is not None
        return plan_key(account_id, on, kind, action.template)
    return plan_key(account_id, on, kind, kind)


def queue_message(
    session: Session,
    state: DayState,
    case: CollectionCase,
    action: PlannedAction,
    bill_id: str | None,
    ctx: JobContext,
) -> int:
    """Queue an SMS for the day's window (the guard judges it just before sending)."""
    assert action.template is not None
    key = plan_key(case.account_id, ctx.business_date, action.kind.value, action.template)
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
            planned_for=utc(planning_instant(ctx)),
            deferrals=0,
            send_attempts=0,
        )
    )
    return 1


def create_task(
    session: Session,
    state: DayState,
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
    key = plan_key(case.account_id, ctx.business_date, kind, kind)
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
    task_id = str(uuid.uuid5(MESSAGE_ID_NAMESPACE, key))
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
            due_by=due_by,
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
        planned_for=utc(planning_instant(ctx)),
        deferrals=0,
        send_attempts=0,
    )


def _call_block_reason(
    state: DayState, case: CollectionCase, view: CaseView, slice_facts: SliceFacts, ctx: JobContext
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
