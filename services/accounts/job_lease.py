"""A lease on (job, business date): what keeps two closes of one date from running at once.

The ``job_runs`` row of a date is claimed by a run token. Another run finding
it claimed and fresh refuses with ``LeaseHeld``; a claim older than
``LEASE_SECONDS`` (its worker died) may be taken over, which is safe because
every step of the close is idempotent for its date.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.accounts.models import JobRun

LEASE_SECONDS = 600


class LeaseHeld(RuntimeError):
    """Another run holds this job's date."""


def last_done(session: Session, job: str) -> date | None:
    return session.scalar(select(func.max(JobRun.business_date)).where(JobRun.job == job, JobRun.status == "done"))


def _aware(instant: datetime) -> datetime:
    return instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)


class JobLease:
    def __init__(self, job: str, owner: str):
        self.job = job
        self.owner = owner

    def acquire(self, session: Session, day: date, now: datetime) -> None:
        run = session.get(JobRun, (self.job, day), with_for_update=True)
        if run is None:
            session.add(JobRun(job=self.job, business_date=day, status="running", started_at=now, owner=self.owner))
            session.flush()
            return
        if run.status == "done" or run.owner == self.owner:
            return
        if _aware(now) - _aware(run.started_at) < timedelta(seconds=LEASE_SECONDS):
            raise LeaseHeld(f"{self.job} for {day} is already running (run {run.owner})")
        run.owner, run.started_at, run.status = self.owner, now, "running"

    def finish(self, session: Session, day: date, summary: dict[str, Any], now: datetime | None = None) -> None:
        run = session.get(JobRun, (self.job, day), with_for_update=True)
        if run is None:
            raise LeaseHeld(f"{self.job} for {day} lost its run row")
        run.status = "done"
        run.finished_at = now or run.started_at
        run.summary = json.dumps(summary, default=str)
