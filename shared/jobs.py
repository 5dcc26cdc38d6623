"""Scheduled jobs as Celery tasks: same code whether beat fires them or an operator does.

A job is a function of (state, business date). The task wrapper resolves the
business date (the given one, or today in Asia/Shanghai when beat fires it),
times it, and supports continuation: a long job does a bounded slice of work,
and when it returns ``more=True`` the wrapper queues the next slice as a new
task and answers with its id. Every task therefore stays far shorter than the
broker's visibility timeout, and ``baitiao jobs run`` follows the chain.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from celery import Celery
from sqlalchemy import Engine

from shared import metrics
from shared.bus.outbox import Outbox
from shared.bus.topology import jobs_queue_name
from shared.clock import Clock, SystemClock, at_local, event_time_clock
from shared.db import engine_for
from shared.log import get_logger
from shared.rules import ProductRules
from shared.service import JobSpec, ServiceDefinition
from shared.settings import Settings

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


def register_job(app: Celery, definition: ServiceDefinition, spec: JobSpec, fn: JobFunction) -> Any:
    """Register ``fn`` as the Celery task ``spec.task`` on the service's job queue."""

    @app.task(name=spec.task, bind=True, acks_late=True)
    def run_job(task: Any, business_date: str | None = None, at: str | None = None,
                state: dict[str, Any] | None = None) -> dict[str, Any]:
        settings: Settings = app.baitiao_settings  # type: ignore[attr-defined]
        clock: Clock = SystemClock()
        day = date.fromisoformat(business_date) if business_date else clock.now().date()
        if settings.clock == "event":
            clock = event_time_clock(at_local(day, at or "00:00"))
        ctx = JobContext(
            service=definition.name, job=spec.name, business_date=day, at=at,
            engine=engine_for(settings.db_url(definition.name)), outbox=Outbox(definition.bus.outbox),
            rules=settings.rules(), clock=clock, settings=settings, state=dict(state or {}),
        )
        started = time.perf_counter()
        result = fn(ctx)
        wake_relay = getattr(app, "baitiao_relay_wake", None)
        if wake_relay is not None:  # running inside a worker: publish this slice's outbox now
            wake_relay()
        elapsed = time.perf_counter() - started
        metrics.JOB_SECONDS.labels(spec.name).observe(elapsed)
        summary = {"job": spec.name, "business_date": day.isoformat(), **result.summary}
        if result.more:
            nxt = run_job.apply_async(
                kwargs={"business_date": day.isoformat(), "at": at, "state": result.state},
                queue=jobs_queue_name(definition.name),
            )
            summary["continued_as"] = nxt.id
        log.info("job_slice_done", job=spec.name, business_date=day.isoformat(), seconds=round(elapsed, 3),
                 more=result.more)
        return summary

    return run_job
