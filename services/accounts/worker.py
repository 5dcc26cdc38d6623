"""The accounts worker: its Celery app, job tasks and event handlers.

Start it with ``baitiao worker accounts``. Its events arrive on
``accounts.events``; its jobs (statements, daily-close, credit-report) on
``accounts.jobs``.
"""

from __future__ import annotations

from pathlib import Path

from services.accounts import jobs
from services.accounts.registry import HANDLERS
from services.accounts.models import BUS, Base
from shared.celery_app import make_service_app
from shared.jobs import register_job
from shared.service import JobSpec, ServiceDefinition

DEFINITION = ServiceDefinition(
    name="accounts",
    metadata=Base.metadata,
    bus=BUS,
    handlers=HANDLERS,
    migrations_dir=Path(__file__).parent / "migrations",
    watches_unrouted=True,  # the outside systems talk to accounts: it keeps what nobody routes
    jobs=[
        JobSpec("statements", "accounts.statements", "bills on statement day"),
        JobSpec("daily-close", "accounts.daily_close", "DPD, accrual, late fee, lock ladder"),
        JobSpec("credit-report", "accounts.credit_report", "monthly bureau file"),
    ],
)

app = make_service_app(DEFINITION)
statements_task = register_job(app, DEFINITION, DEFINITION.jobs[0], jobs.statements)
daily_close_task = register_job(app, DEFINITION, DEFINITION.jobs[1], jobs.daily_close)
credit_report_task = register_job(app, DEFINITION, DEFINITION.jobs[2], jobs.credit_report)
