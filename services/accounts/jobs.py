"""Accounts' scheduled jobs: statements, the daily close, the credit report."""
from __future__ import annotations

from shared.jobs import JobContext, JobResult


def statements(ctx: JobContext) -> JobResult:
    raise NotImplementedError


def daily_close(ctx: JobContext) -> JobResult:
    raise NotImplementedError


def credit_report(ctx: JobContext) -> JobResult:
    raise NotImplementedError
