"""Scheduled jobs as Celery tasks: same code whether beat fires them or an operator does.

A job is a function of (state, business date). The task wrapper resolves the
business date (the given one, or today in Asia/Shanghai when beat fires it),
times it, and supports continuation: a long job does a bounded slice of work,
and when it returns ``more=True`` the wrapper queues the next slice as a new
task and answers with its id. Every task therefore stays short (its time limits:
``shared/job_timing.py``), and ``baitiao jobs run`` follows the chain. Every slice of a
run carries the run's token (``JobContext.run``, its first task's id), so a slice that a
dead worker held and kombu delivers again goes on under its run's job lease.

A partitioned job (``JobSpec.partitioned``) fans out first when the setting
``job_partitions`` is above 1: its first task runs nothing itself and queues one
chain per share of the accounts (``JobContext.partition``), which the worker's job
threads, or its job processes with ``--pool prefork``, run side by side; the waiter
follows every chain and adds their figures up. A job may say a fan-out is not worth it
this time (``worth_fanning_out``: the dispatcher with a handful of contacts due); its
first task then runs the whole job as one chain.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from celery import Celery
from sqlalchemy import Engine

from shared import metrics
from shared.broker import broker_connection
from shared.bus.faults import maybe_hold
from shared.bus.outbox import Outbox
from shared.bus.relay import OutboxRelay
from shared.bus.topology import jobs_queue_name
from shared.clock import Clock, SystemClock, at_local, event_time_clock
from shared.db import engine_for
from shared.job_timing import SLICE_SOFT_TIME_LIMIT
from shared.job_runs import leases_kept
from shared.log import get_logger
from shared.rules import ProductRules
from shared.service import JobSpec, ServiceDefinition
from shared.settings import Settings
from shared.transient import Backoff, is_transient

log = get_logger(__name__)


@dataclass
class JobContext:
    """What a job gets: its business date (and local time), the database, the outbox."""

    service: str
    job: str
    business_date: date
    at: str | None
    engine: Engine
    outbox: Outbox
    rules: ProductRules
    clock: Clock
    settings: Settings
    state: dict[str, Any] = field(default_factory=dict)  # carried across continuation slices
    # The run's token: the id of its first task, kept by every slice of its chains and by a
    # slice delivered again after its worker died, so that the run holds its job lease
    # (shared/job_runs.py) across all of them. Empty outside a worker: the job draws one.
    run: str = ""

    @property
    def partition(self) -> tuple[int, int] | None:
        """(index, count): this chain does only the accounts of share ``index`` of ``count``
        (their case's pk modulo ``count``); None: all of them."""
        share = self.state.get("partition")
        return (int(share[0]), int(share[1])) if share else None

    @property
    def instant(self) -> datetime:
        """The local instant the job runs as (``--at``; else 00:00 of the business date)."""
        return at_local(self.business_date, self.at or "00:00")


@dataclass
class JobResult:
    summary: dict[str, Any]
    more: bool = False  # True: queue another slice with ``state``
    state: dict[str, Any] = field(default_factory=dict)


JobFunction = Callable[[JobContext], JobResult]


def register_job(
    app: Celery,
    definition: ServiceDefinition,
    spec: JobSpec,
    fn: JobFunction,
    worth_fanning_out: Callable[[JobContext], bool] | None = None,
) -> Any:
    """Register ``fn`` as the Celery task ``spec.task`` on the service's job queue.

    ``worth_fanning_out``: for a partitioned job, asked before it fans out; False runs the
    whole job in this one chain (a fan-out costs two more task round trips, more than a
    handful of items takes)."""

    # celery ships no type information: its task decorator as used here, typed at our side
    as_task: Callable[[Callable[..., dict[str, Any]]], Any] = app.task(name=spec.task, bind=True, acks_late=True)

    @as_task
    def run_job(
        task: Any,
        business_date: str | None = None,
        at: str | None = None,
        state: dict[str, Any] | None = None,
        run: str | None = None,
    ) -> dict[str, Any]:
        settings: Settings = app.baitiao_settings
        clock: Clock = SystemClock()
        day = date.fromisoformat(business_date) if business_date else clock.now().date()
        state = dict(state or {})
        run = run or str(task.request.id or uuid.uuid4().hex)  # the first task's id names the run

        def queue(next_state: dict[str, Any]) -> str:
            kwargs = {"business_date": day.isoformat(), "at": at, "state": next_state, "run": run}
            return str(run_job.apply_async(kwargs=kwargs, queue=jobs_queue_name(definition.name)).id)

        head = {"job": spec.name, "business_date": day.isoformat()}
        if settings.clock == "event":
            clock = event_time_clock(at_local(day, at or "00:00"))
        ctx = JobContext(
            service=definition.name,
            job=spec.name,
            business_date=day,
            at=at,
            engine=engine_for(settings.db_url(definition.name)),
            outbox=Outbox(definition.bus.outbox),
            rules=settings.rules(),
            clock=clock,
            settings=settings,
            state=state,
            run=run,
        )  # the slice gets a copy of the state below, once the fan-out has marked it
        shares = chains_to_start(
            spec, settings.job_partitions, state, lambda: worth_fanning_out is None or worth_fanning_out(ctx)
        )
        if shares:
            chains = [queue(share) for share in shares]
            log.info("job_fanned_out", job=spec.name, business_date=day.isoformat(), partitions=len(chains))
            return {**head, "partitions": len(chains), "continued_as": chains}
        ctx.state = copy.deepcopy(state)
        started = time.perf_counter()
        with leases_kept(ctx.engine, ctx.clock.now):  # the run's lease stays fresh while the slice runs
            try:
                result = run_slice(fn, ctx, state, wait_s=OUTAGE_WAIT_S)
            except OutageOutlastsSlice as exc:  # the broker holds the slice until it is due again
                raise task.retry(exc=exc, countdown=OUTAGE_RETRY_COUNTDOWN_S, max_retries=None) from exc
        publish_slice(app, definition, ctx.engine)
        maybe_hold("hold_after_slice", spec.name)  # the job crash tests' fault point (shared/bus/faults.py)
        elapsed = time.perf_counter() - started
        metrics.JOB_SECONDS.labels(spec.name).observe(elapsed)
        summary = {**head, **result.summary}
        if result.more:  # the next slice keeps this chain's share of the accounts
            share = {"partition": state["partition"]} if "partition" in state else {}
            summary["continued_as"] = queue({**share, **result.state})
        log.info(
            "job_slice_done", job=spec.name, business_date=day.isoformat(), seconds=round(elapsed, 3), more=result.more
        )
        return summary

    return run_job


def chains_to_start(
    spec: JobSpec, partitions: int, state: dict[str, Any], worth_it: Callable[[], bool]
) -> list[dict[str, Any]]:
    """The states of the chains a job's task starts instead of running (none: it runs).

    A partitioned job's first task (no ``partition`` in its state yet) starts one chain per
    share, unless ``worth_it`` says no: then ``state`` is marked as the whole job's
    (``partition`` None), so that neither this task nor its continuations fan out."""
    if not spec.partitioned or partitions <= 1 or "partition" in state:
        return []
    if not worth_it():
        state["partition"] = None
        return []
    return [{**state, "partition": [index, partitions]} for index in range(partitions)]


_child_relays: dict[str, OutboxRelay] = {}


def publish_slice(app: Celery, definition: ServiceDefinition, engine: Engine) -> None:
    """Send the slice's events now rather than at the relay's next poll.

    In a worker with the threads pool the worker's own relay is woken. A prefork pool's
    job process (``baitiao worker --pool prefork``) cannot reach that thread, so it
    publishes its outbox itself; the relays take turns (shared/bus/relay.py), and what it
    cannot send now the worker's relay sends at its next poll."""
    # A pool child first: one forked later (a restarted child) inherits the parent's wake,
    # which does nothing in it.
    if getattr(app, "baitiao_pool_child", False):
        _publish_own_outbox(app, definition, engine)
        return
    wake_relay = getattr(app, "baitiao_relay_wake", None)
    if wake_relay is not None:
        wake_relay()
    # else not in a worker (a task applied in-process): the caller relays


def _publish_own_outbox(app: Celery, definition: ServiceDefinition, engine: Engine) -> None:
    relay = _child_relays.get(definition.name)
    if relay is None:
        relay = OutboxRelay(
            engine, definition.bus.outbox, broker_connection(app.conf.broker_url, app.baitiao_settings), definition.name
        )
        _child_relays[definition.name] = relay
    try:
        relay.drain()
    except Exception as exc:  # noqa: BLE001 - the worker's relay sends it at its next poll
        log.warning("job_relay_retry", service=definition.name, error=str(exc)[:300])
        relay.reset()


# How long a slice waits out an outage in its own task (well inside the soft time limit)
# before it hands the wait over to the broker: a Celery retry of the same task (same id,
# same arguments), due this many seconds later.
OUTAGE_WAIT_S = SLICE_SOFT_TIME_LIMIT / 2
OUTAGE_RETRY_COUNTDOWN_S = 5


class OutageOutlastsSlice(RuntimeError):
    """The database stayed away longer than a slice may wait in its task."""


def run_slice(
    fn: JobFunction,
    ctx: JobContext,
    state: dict[str, Any],
    wait_s: float = OUTAGE_WAIT_S,
    backoff: Backoff | None = None,
) -> JobResult:
    """Run one slice; while it fails on a transient fault (shared/transient.py: the database
    away or restarting, a lost connection, a lost deadlock or serialization conflict), run
    it again from its start after a jittered, capped pause, for up to ``wait_s`` seconds;
    past that, raise :class:`OutageOutlastsSlice` (the task then retries itself later, so
    an outage of any length delays the job and fails nothing). Any other error stands.

    The engines do not ping a connection before each use (shared/db.py): after a database
    restart the first statement on a stale pooled connection fails, and SQLAlchemy then
    drops the whole pool; the next try gets a fresh connection. A slice is safe to run
    again from the state it was given: that is what a redelivered slice does after a
    worker dies (acks_late), and every job is written for it."""
    backoff = backoff or Backoff(0.5, 5.0)
    give_up_at = time.monotonic() + wait_s
    while True:
        try:
            return fn(ctx)
        except Exception as exc:
            if not is_transient(exc):
                raise
            pause = backoff.next()
            if time.monotonic() + pause > give_up_at:
                raise OutageOutlastsSlice(f"{ctx.job} for {ctx.business_date}: {type(exc).__name__}") from exc
            log.warning(
                "job_slice_retried",
                job=ctx.job,
                business_date=ctx.business_date.isoformat(),
                error=type(getattr(exc, "orig", None) or exc).__name__,
                backoff_s=round(pause, 2),
            )
            time.sleep(pause)
            ctx.state = copy.deepcopy(state)
