"""The collections worker: its Celery app, job tasks and event handlers (`baitiao worker collections`).

Events arrive on ``collections.events``; the jobs (collections-daily at 08:00,
contact-dispatch every minute 08:00–21:00) on ``collections.jobs``.
"""

from __future__ import annotations

from pathlib import Path

from services.collections import jobs
from services.collections.registry import HANDLERS
from services.collections.models import BUS, Base
from shared.celery_app import make_service_app
from shared.jobs import register_job
from shared.service import JobSpec, ServiceDefinition

DEFINITION = ServiceDefinition(
    name="collections",
    metadata=Base.metadata,
    bus=BUS,
    handlers=HANDLERS,
    migrations_dir=Path(__file__).parent / "migrations",
    jobs=[
        JobSpec(
            "collections-daily",
            "collections.daily",
            "the day's reminders, tasks and escalations per case",
            partitioned=True,
        ),
        JobSpec(
            "contact-dispatch",
            "collections.contact_dispatch",
            "send due contacts through the compliance guard",
            partitioned=True,
        ),
    ],
)

app = make_service_app(DEFINITION)
daily_task = register_job(app, DEFINITION, DEFINITION.jobs[0], jobs.collections_daily)
contact_dispatch_task = register_job(
    app, DEFINITION, DEFINITION.jobs[1], jobs.contact_dispatch, worth_fanning_out=jobs.dispatch_worth_fanning_out
)
