"""The restructuring worker: its Celery app, job tasks and event handlers (`baitiao worker restructuring`).

Its events arrive on ``restructuring.events``; its job (plan-monitor) on
``restructuring.jobs``.
"""

from __future__ import annotations

from pathlib import Path

from services.restructuring import jobs
from services.restructuring.registry import HANDLERS
from services.restructuring.models import BUS, Base
from shared.celery_app import make_service_app
from shared.jobs import register_job
from shared.service import JobSpec, ServiceDefinition

DEFINITION = ServiceDefinition(
    name="restructuring",
    metadata=Base.metadata,
    bus=BUS,
    handlers=HANDLERS,
    migrations_dir=Path(__file__).parent / "migrations",
    jobs=[
        JobSpec("plan-monitor", "restructuring.plan_monitor", "installments overdue, plan defaults, offer expiry"),
    ],
)

app = make_service_app(DEFINITION)
plan_monitor_task = register_job(app, DEFINITION, DEFINITION.jobs[0], jobs.plan_monitor)
