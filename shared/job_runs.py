"""A scheduled job's runs per business date, and the lease that keeps two runs of one date apart.

Every service keeps a ``job_runs`` table of its own (database per service); the
columns and the lease logic are shared here. A date's row is claimed by a run
token: another run finding it claimed and fresh refuses with ``LeaseHeld``; a
claim older than ``LEASE_SECONDS`` (its worker died) may be taken over, which is
safe because every job is idempotent for its date.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Date, DateTime, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.job_timing import LEASE_SECONDS


class JobRunColumns:
    """Declarative mixin: ``class JobRun(JobRunColumns, Base): __tablename__ = "job_runs"``."""

    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # running | done
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the run holding the lease


class LeaseHeld(RuntimeError):
    """Another run holds this job's date."""


def last_done(session: Session, model: type[JobRunColumns], job: str) -> date | None:
    """The latest business date this job finished."""
    return session.scalar(select(func.max(model.business_date)).where(model.job == job, model.status == "done"))


def done_on(session: Session, model: type[JobRunColumns], job: str, day: date) -> bool:
    """Whether this job already finished for this business date."""
    run = session.get(model, (job, day))
    return run is not None and run.status == "done"


def _aware(instant: datetime) -> datetime:
    return instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)


class JobLease:
    def __init__(self, model: type[JobRunColumns], job: str, owner: str):
        self.model = model
        self.job = job
        self.owner = owner

    def acquire(self, session: Session, day: date, now: datetime) -> None:
        run = session.get(self.model, (self.job, day), with_for_update=True)
        if run is None:
            session.add(self.model(job=self.job, business_date=day, status="running", started_at=now,  # type: ignore[call-arg]
                                   owner=self.owner))
            session.flush()
            return
        if run.status == "done" or run.owner == self.owner:
            return
        if _aware(now) - _aware(run.started_at) < timedelta(seconds=LEASE_SECONDS):
            raise LeaseHeld(f"{self.job} for {day} is already running (run {run.owner})")
        run.owner, run.started_at, run.status = self.owner, now, "running"

    def finish(self, session: Session, day: date, summary: dict[str, Any], now: datetime | None = None) -> None:
        run = session.get(self.model, (self.job, day), with_for_update=True)
        if run is None:
            raise LeaseHeld(f"{self.job} for {day} lost its run row")
        run.status = "done"
        run.finished_at = now or run.started_at
        run.summary = json.dumps(summary, default=str)
