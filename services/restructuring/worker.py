"""The restructuring worker: its Celery app, job tasks and event handlers (`baitiao worker restructuring`)."""
from __future__ import annotations

from pathlib import Path

from services.restructuring.handlers import HANDLERS
from services.restructuring.models import BUS, Base
from shared.celery_app import make_service_app
from shared.service import ServiceDefinition

DEFINITION = ServiceDefinition(
    name="restructuring",
    metadata=Base.metadata,
    bus=BUS,
    handlers=HANDLERS,
    migrations_dir=Path(__file__).parent / "migrations",
    jobs=[],
)

app = make_service_app(DEFINITION)
