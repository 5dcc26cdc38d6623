"""The accounts service's job runs: the shared lease bound to this service's ``job_runs`` table."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from services.accounts.models import JobRun
from shared import job_runs
from shared.job_runs import LeaseHeld


class JobLease(job_runs.JobLease):
    def __init__(self, job: str, owner: str):
        super().__init__(JobRun, job, owner)


def last_done(session: Session, job: str, other_than: str | None = None) -> date | None:
    return job_runs.last_done(session, JobRun, job, other_than)


__all__ = ["JobLease", "LeaseHeld", "last_done"]
