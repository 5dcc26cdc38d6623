"""What a service tells the shared machinery about itself.

Each service's ``worker.py`` builds one :class:`ServiceDefinition`; the Celery
wiring, the migrations, the command line and the tests all start from it, so
no shared code ever imports a service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData

from shared.bus.handling import BatchHandler, BusTables, Handler
from shared.settings import ServiceName


@dataclass(frozen=True)
class JobSpec:
    """A scheduled job: its public name (EVENTS.md Jobs table) and its Celery task name."""

    name: str  # e.g. "daily-close"
    task: str  # e.g. "accounts.daily_close"
    description: str = ""
    # True: the job reads ``JobContext.partition`` and does only its share of the
    # accounts, so a run can go out as ``job_partitions`` chains of slices at once
    # (shared/jobs.py). Only for jobs whose work on one account never looks at another's.
    partitioned: bool = False


@dataclass
class ServiceDefinition:
    name: ServiceName
    metadata: MetaData
    bus: BusTables
    handlers: dict[str, Handler | BatchHandler]
    migrations_dir: Path
    jobs: list[JobSpec] = field(default_factory=list)
    # Called once when a worker starts, with the service's engine (warm caches, etc.).
    on_start: Callable[[Engine], Any] | None = None
    # True: its workers also drain the catch-all queue ``unrouted`` and keep what the
    # contract does not know in this service's dead letters (shared/bus/unrouted.py).
    watches_unrouted: bool = False
