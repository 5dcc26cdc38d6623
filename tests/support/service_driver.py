"""Drive one service in-process against a real PostgreSQL database: apply events
through the real ``EventApplier`` (inbox, transactions, outbox) and run its jobs
with a ``JobContext``, then read what it emitted from its outbox."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, select, text

from shared.bus.handling import Delivery, EventApplier
from shared.bus.outbox import Outbox
from shared.clock import SHANGHAI, FixedClock
from shared.jobs import JobContext, JobResult
from shared.rules import ProductRules
from shared.settings import Settings
from tests.support.system import PG_BASE, envelope


@dataclass
class ServiceDriver:
    service: str
    rules: ProductRules = field(default_factory=ProductRules)
    clock: FixedClock = field(default_factory=FixedClock)
    db_name: str = field(default_factory=lambda: f"bt_drv_{uuid.uuid4().hex[:8]}")
    sqlite_dir: str | None = None  # set: the embedded default's SQLite instead of PostgreSQL

    def __post_init__(self) -> None:
        from baitiao import registry
        from shared.db import make_engine
        from shared.migrations import upgrade

        self.definition = registry.definition(self.service)
        self.url = f"sqlite:///{self.sqlite_dir}/{self.db_name}.db" if self.sqlite_dir else f"{PG_BASE}/{self.db_name}"
        upgrade(self.definition, self.url)
        self.engine: Engine = make_engine(self.url)
        self.applier = EventApplier(
            self.service, self.engine, self.definition.bus, self.definition.handlers, self.rules, self.clock
        )
        self._seen_outbox = 0

    def send(
        self,
        event_type: str,
        payload: dict[str, Any],
        aggregate_id: str | None = None,
        occurred_at: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        body = envelope(
            event_type,
            payload,
            aggregate_id or payload.get("account_id", "x"),
            event_id=event_id,
            occurred_at=occurred_at or self.clock.now().isoformat(),
        )
        outcome = self.applier.apply_batch([Delivery(body=json.dumps(body).encode())])
        assert not outcome.retry and not outcome.dead_lettered, f"{event_type} failed: {outcome}"
        return body

    def run_job(self, name: str, day: date, at: str | None = None, deliveries: int = 1) -> dict[str, Any]:
        return run_job(self.service, self.engine, name, day, at, self.rules, self.clock, deliveries)

    def emitted(self, event_type: str | None = None, since_mark: bool = False) -> list[dict[str, Any]]:
        outbox = self.definition.bus.outbox
        query = select(outbox.c.id, outbox.c.type, outbox.c.payload).order_by(outbox.c.id)
        if since_mark:
            query = query.where(outbox.c.id > self._seen_outbox)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {"id": r.id, "type": r.type, "payload": json.loads(r.payload)}
            for r in rows
            if event_type is None or r.type == event_type
        ]

    def mark(self) -> None:
        with self.engine.connect() as conn:
            self._seen_outbox = conn.scalar(text("SELECT coalesce(max(id), 0) FROM outbox")) or 0  # noqa: S608

    def at(self, iso: str) -> None:
        self.clock.set(datetime.fromisoformat(iso).astimezone(SHANGHAI))

    def drop(self) -> None:
        from shared.db import dispose_engines

        self.engine.dispose()
        dispose_engines()
        if self.sqlite_dir:
            return
        admin = create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
        admin.dispose()


def run_job(
    service: str,
    engine: Engine,
    name: str,
    day: date,
    at: str | None = None,
    rules: ProductRules | None = None,
    clock: FixedClock | None = None,
    deliveries: int = 1,
) -> dict[str, Any]:
    """Run one of ``service``'s jobs on ``engine``'s database for ``day``, slice after slice.

    ``deliveries`` above 1: each slice is run that many times from the state it was sent
    with, as kombu delivers a slice again when its worker died after the slice's work
    committed but before the task was acknowledged; the chain goes on from the last one."""
    import importlib

    from baitiao import registry

    definition = registry.definition(service)
    spec = next(j for j in definition.jobs if j.name == name)
    module = importlib.import_module(f"services.{service}.jobs")
    # the job's function: named as its task (accounts.statements) or as the job (collections-daily)
    fn = getattr(module, spec.task.split(".", 1)[1], None) or getattr(module, name.replace("-", "_"))
    settings = Settings(**{f"{service}_db_url": engine.url.render_as_string(hide_password=False)})
    state: dict[str, Any] = {}
    run = uuid.uuid4().hex  # the run's token, as a worker takes it from the first task's id
    while True:
        ctx = JobContext(
            service,
            name,
            day,
            at,
            engine,
            Outbox(definition.bus.outbox),
            rules if rules is not None else ProductRules(),
            clock if clock is not None else FixedClock(),
            settings,
            state,
            run=run,
        )
        for _ in range(deliveries):
            ctx.state = copy.deepcopy(state)
            result: JobResult = fn(ctx)
        if not result.more:
            return result.summary
        state = result.state
