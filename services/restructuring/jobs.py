"""The restructuring service's scheduled job: ``plan-monitor`` (beat 01:00, or by hand).

For business date T it looks only at active plans that have an open installment due
before T (one indexed, set-based query per chunk of plans, by ``plan.pk`` range), and
for each of them:

* ``plan.installment.overdue`` once per installment, the first run that sees it
  unpaid after its due date (the DPD on the event is the DPD of that run); it is not
  re-emitted with a growing DPD: the default rule and ``plan.defaulted`` carry the rest;
* ``plan.defaulted`` (RULES 8: an installment at DPD ≥ 31, or two overdue at once)
  with the domain's default settlement; future fees are cancelled and the plan leaves
  the account (accounts turns it back into one overdue bill, collections resume).

It also marks offers whose validity ended before T as ``expired`` (one UPDATE).

Idempotent per date: a ``job_runs`` row (job, T) marked ``done`` makes a re-run a
no-op, and within a run every effect is guarded by the row's own state (the notified
date, the plan's status), so a run interrupted between chunks resumes safely.
Plans are processed in chunks of ``CHUNK`` plans per transaction; after
``CHUNKS_PER_SLICE`` chunks the job returns ``more=True`` with the last pk so the
wrapper continues in a new task.
"""

from __future__ import annotations

import uuid
from datetime import date, timezone
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from services.restructuring import store
from services.restructuring.domain import default_settlement, review_plan
from services.restructuring.domain.plan import monitoring_date
from services.restructuring.models import (
    AccountView,
    JobRun,
    OfferRow,
    Plan,
    PlanInstallment,
)
from shared.bus.outbox import PendingEvent, payload_json
from shared.clock import at_local
from shared.db import rows_changed, transaction
from shared.events import payloads as p
from shared.job_runs import UNITS, JobLease, done_on
from shared.jobs import JobContext, JobResult
from shared.money import to_fen

JOB = "plan-monitor"
CHUNK = 500
CHUNKS_PER_SLICE = 20


def plan_monitor(ctx: JobContext) -> JobResult:
    """Monitor every active plan for ``ctx.business_date`` (see the module docstring).

    Each unit of work (the offers past their validity, then a chunk of plans) records the
    date's progress in its own transaction, and the next starts from the progress recorded
    (``JobLease.resume``): a slice delivered again after its worker died neither does a
    unit twice nor loses its figures."""
    day = ctx.business_date
    state = dict(ctx.state)
    if not state:
        state = {"run": ctx.run or uuid.uuid4().hex, "day": day.isoformat()}
        with transaction(ctx.engine) as session:  # done by this run: its first slice again, the figures stand
            if done_on(session, JobRun, JOB, day, other_than=state["run"]):
                return JobResult({"skipped": "already_done"})
    lease = JobLease(JobRun, JOB, state["run"])
    with transaction(ctx.engine) as session:  # a later slice renews the run's lease (shared/job_runs.py)
        lease.acquire(session, day, ctx.clock.now())
    for _ in range(CHUNKS_PER_SLICE):
        with transaction(ctx.engine) as session:
            standing = lease.resume(session, day, _progress(state))
            if standing.done:
                return JobResult(standing.progress)
            state.update(standing.progress)
            if not state[UNITS]:  # the date's first unit: the offers past their validity
                state["expired_offers"] = _expire_offers(session, day)
            else:
                pks = _due_plans(session, day, state["after_pk"])
                if not pks:
                    lease.finish(session, day, _summary(state), ctx.clock.now())
                    return JobResult(_summary(state))
                overdue, defaulted = _review_chunk(ctx, session, pks, day)
                state["after_pk"] = pks[-1]
                state["overdue"] += overdue
                state["defaulted"] += defaulted
            state.update(lease.record(session, day, _progress(state)))
    return JobResult(_summary(state), more=True, state=state)


def _progress(state: dict[str, Any]) -> dict[str, Any]:
    """The date's progress as the state carries it: the last plan reviewed, the figures."""
    return {key: state.get(key, 0) for key in ("after_pk", "overdue", "defaulted", "expired_offers", UNITS)}


def _summary(state: dict[str, Any]) -> dict[str, Any]:
    """The run's figures; plan-monitor runs its one business date (it does not catch up:
    the default rule reads each installment's DPD on the day it runs), listed as the
    other jobs list the dates they ran."""
    return {**{k: state[k] for k in ("overdue", "defaulted", "expired_offers")}, "dates_run": [state["day"]]}


def _expire_offers(session: Session, day: date) -> int:
    """Offers whose validity ended before the business date began are expired."""
    cutoff = at_local(day).astimezone(timezone.utc)
    result = session.execute(
        update(OfferRow).where(OfferRow.status == "offered", OfferRow.expires_at <= cutoff).values(status="expired")
    )
    return rows_changed(result)


def _due_plans(session: Session, day: date, after_pk: int) -> list[int]:
    """Active plans with an open installment due before ``day``: the only ones that can
    have something overdue; a plan whose account's delinquency is paused is held (RULES
    2.8). One query, ordered by pk, at most CHUNK plans."""
    paused = select(AccountView.account_id).where(AccountView.paused_on.is_not(None))
    query = (
        select(Plan.pk)
        .join(
            PlanInstallment,
            and_(PlanInstallment.plan_pk == Plan.pk, PlanInstallment.status == "open", PlanInstallment.due_date < day),
        )
        .where(Plan.status == "active", Plan.pk > after_pk, Plan.account_id.not_in(paused))
        .group_by(Plan.pk)
        .order_by(Plan.pk)
        .limit(CHUNK)
    )
    return list(session.scalars(query))


def _review_chunk(ctx: JobContext, session: Session, pks: list[int], day: date) -> tuple[int, int]:
    """Review a chunk of plans with two queries (plans, installments); emit set-based."""
    plans = session.scalars(select(Plan).where(Plan.pk.in_(pks)).order_by(Plan.pk).with_for_update()).all()
    rows_by_plan: dict[int, list[PlanInstallment]] = {pk: [] for pk in pks}
    for row in session.scalars(
        select(PlanInstallment)
        .where(PlanInstallment.plan_pk.in_(pks))
        .order_by(PlanInstallment.plan_pk, PlanInstallment.period)
    ):
        rows_by_plan[row.plan_pk].append(row)
    events: list[PendingEvent] = []
    overdue_count = defaulted_count = 0
    for plan in plans:
        if plan.status != "active":
            continue
        overdue, defaulted = _review_plan(ctx, session, plan, rows_by_plan[plan.pk], day, events)
        overdue_count += overdue
        defaulted_count += defaulted
    ctx.outbox.emit_many(session, events)
    return overdue_count, defaulted_count


def _event(ctx: JobContext, event_type: str, payload: p.Payload, aggregate_id: str) -> PendingEvent:
    return PendingEvent(event_type, aggregate_id, payload_json(event_type, payload), ctx.clock.now())


def _review_plan(
    ctx: JobContext, session: Session, plan: Plan, rows: list[PlanInstallment], day: date, events: list[PendingEvent]
) -> tuple[int, int]:
    schedule, paid = store.plan_schedule(plan, rows), store.plan_paid(rows)
    review = review_plan(schedule, paid, monitoring_date(day, plan.days_held or 0), ctx.rules.restructuring)
    by_period = {r.period: r for r in rows}
    notified = 0
    for item in review.overdue:
        row = by_period[item.period]
        if row.overdue_notified_on is None:
            row.overdue_notified_on = day
            notified += 1
            events.append(
                _event(
                    ctx,
                    "plan.installment.overdue",
                    p.PlanInstallmentOverdue(
                        plan_id=plan.plan_id,
                        account_id=plan.account_id,
                        period=item.period,
                        due_date=item.due_date,
                        dpd=item.dpd,
                        amount=item.amount,
                    ),
                    plan.plan_id,
                )
            )
    if not review.defaulted:
        return notified, 0
    settlement = default_settlement(schedule, paid, day)
    for row in rows:
        if row.status == "open":
            row.status = "defaulted"
    plan.status, plan.ended_on = "defaulted", day
    plan.fees_cancelled_fen = to_fen(settlement.fees_cancelled)
    account = session.get(AccountView, plan.account_id)
    if account is not None and account.active_plan_id == plan.plan_id:
        account.active_plan_id = None
    events.append(
        _event(
            ctx,
            "plan.defaulted",
            p.PlanDefaulted(
                plan_id=plan.plan_id,
                account_id=plan.account_id,
                business_date=day,
                outstanding_principal=settlement.outstanding_principal,
                fees_due=settlement.fees_due,
                first_missed_due_date=settlement.first_missed_due_date,
            ),
            plan.plan_id,
        )
    )
    return notified, 1
