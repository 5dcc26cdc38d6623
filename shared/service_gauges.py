"""A service's state as gauges, read when /metrics is scraped: queues, unacked, outbox, dead letters, jobs.

What a counter inside the worker cannot know (how much waits in Redis, in the outbox,
in the dead letters; when each job last finished) is read at scrape time: one Redis
pipeline (one round trip) and one SQL statement, at most every ``refresh_s`` seconds
whatever the number of scrapers; a scrape arriving while a read is under way (a slow
database) is answered at once with the last figures rather than queued behind it.

The outbox lag is how long the oldest unpublished row has been the oldest one, as these
reads saw it (so at most the scrape interval off): the outbox has no insertion time, and
a row's ``occurred_at`` is the business instant it reports (a job stamps its own date's
instant), which says nothing of how long the row has waited. A relay that keeps up moves
the head every few milliseconds, so the lag stays at zero while ``baitiao_outbox_unpublished``
shows a backlog; a stuck relay's lag grows with every scrape.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import redis
from sqlalchemy import BigInteger, Date, DateTime, Engine, String, Table, cast, func, literal, null, select, union_all

from shared.broker import broker_client
from shared.bus.kombu_redis import unacked_keys, waiting_lists
from shared.bus.topology import events_queue_name, jobs_queue_name
from shared.clock import at_local
from shared.log import get_logger
from shared.service import ServiceDefinition
from shared.settings import Settings

log = get_logger(__name__)

# kombu's Redis transport keeps a queue's messages of priority p > 0 under "<queue>\x06\x16<p>".


@dataclass
class Snapshot:
    """The figures of one read; None where that source could not be read."""

    queues: dict[str, int] | None = None
    unacked: int | None = None
    unpublished: int | None = None
    outbox_lag_s: float | None = None
    dead_letters: int | None = None
    jobs: dict[str, tuple[date, float | None]] = field(default_factory=dict)


def _epoch(instant: datetime | None) -> float | None:
    if instant is None:
        return None
    return (instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)).timestamp()


class ServiceGauges:
    """A prometheus_client collector of one service's state (see the module's docstring)."""

    def __init__(
        self,
        service: str,
        engine: Engine,
        outbox: Table,
        dead_letters: Table,
        job_runs: Table | None,
        broker: redis.Redis,
        refresh_s: float = 5.0,
    ):
        self.service = service
        self.engine = engine
        self.broker = broker
        self.refresh_s = refresh_s
        self._statement = self._build_statement(outbox, dead_letters, job_runs)
        self._queues = (events_queue_name(service), jobs_queue_name(service))
        self._lists = {queue: waiting_lists(queue) for queue in self._queues}
        self._unacked_key = unacked_keys(service)["unacked_key"]
        self._lock = threading.Lock()
        self._due = 0.0
        self._snapshot = Snapshot()
        self._head: tuple[int, float] | None = None  # the oldest unpublished row, first seen when

    @classmethod
    def of(
        cls, definition: ServiceDefinition, engine: Engine, broker_url: str, settings: Settings | None = None
    ) -> "ServiceGauges":
        broker = broker_client(broker_url, settings, socket_timeout=1.0, socket_connect_timeout=1.0)
        return cls(
            definition.name,
            engine,
            definition.bus.outbox,
            definition.bus.dead_letters,
            definition.metadata.tables.get("job_runs"),
            broker,
        )

    @staticmethod
    def _build_statement(outbox: Table, dead_letters: Table, job_runs: Table | None) -> Any:
        """One statement for the database's part: rows (kind, job, count, head id, business date, finished at)."""
        no_job, no_count = cast(null(), String), cast(null(), BigInteger)
        no_day, no_instant = cast(null(), Date), cast(null(), DateTime(timezone=True))
        parts = [
            select(
                literal("outbox").label("kind"),
                no_job.label("job"),
                func.count().label("n"),
                func.min(outbox.c.id).label("head"),
                no_day.label("day"),
                no_instant.label("finished"),
            ).where(outbox.c.published_at.is_(None)),
            select(literal("dead"), no_job, func.count(), no_count, no_day, no_instant)
            .select_from(dead_letters)
            .where(dead_letters.c.replayed_at.is_(None)),
        ]
        if job_runs is not None:
            parts.append(
                select(
                    literal("job"),
                    job_runs.c.job,
                    no_count,
                    no_count,
                    func.max(job_runs.c.business_date),
                    func.max(job_runs.c.finished_at),
                )
                .where(job_runs.c.status == "done")
                .group_by(job_runs.c.job)
            )
        return union_all(*parts)

    # -- reading -----------------------------------------------------------------------------
    def latest(self) -> Snapshot:
        """The figures, read again if the last read is older than ``refresh_s`` and no read is under way."""
        if time.monotonic() >= self._due and self._lock.acquire(blocking=False):
            try:
                self._snapshot = self._read()
                self._due = time.monotonic() + self.refresh_s
            finally:
                self._lock.release()
        return self._snapshot

    def _read(self) -> Snapshot:
        snapshot = Snapshot()
        try:
            self._read_broker(snapshot)
        except Exception as exc:  # noqa: BLE001 - a scrape must answer; the gauges' "up" says what failed
            log.warning("service_gauges_broker_failed", service=self.service, error=str(exc)[:300])
        try:
            self._read_database(snapshot)
        except Exception as exc:  # noqa: BLE001 - as above
            log.warning("service_gauges_database_failed", service=self.service, error=str(exc)[:300])
        return snapshot

    def _read_broker(self, snapshot: Snapshot) -> None:
        pipe = self.broker.pipeline(transaction=False)
        for keys in self._lists.values():
            for key in keys:
                pipe.llen(key)
        pipe.hlen(self._unacked_key)
        *lengths, unacked = pipe.execute()
        counts = iter(lengths)
        snapshot.queues = {queue: sum(next(counts) for _ in keys) for queue, keys in self._lists.items()}
        snapshot.unacked = int(unacked)

    def _read_database(self, snapshot: Snapshot) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(self._statement).all()
        now = time.time()
        for kind, job, count, head, day, finished in rows:
            if kind == "outbox":
                snapshot.unpublished = int(count)
                snapshot.outbox_lag_s = self._lag(head, now)
            elif kind == "dead":
                snapshot.dead_letters = int(count)
            elif day is not None:
                snapshot.jobs[job] = (day if isinstance(day, date) else date.fromisoformat(str(day)), _epoch(finished))

    def _lag(self, head: int | None, now: float) -> float:
        if head is None:
            self._head = None
            return 0.0
        if self._head is None or self._head[0] != head:
            self._head = (head, now)
        return now - self._head[1]

    # -- the collector protocol -------------------------------------------------------------
    def describe(self) -> Iterator[Any]:
        yield from self._families(Snapshot())

    def collect(self) -> Iterator[Any]:
        yield from self._families(self.latest())

    def _families(self, s: Snapshot) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        def gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=["service", *(labels or [])])

        up = gauge("baitiao_service_gauges_up", "1 if this source answered the last scrape-time read", ["source"])
        up.add_metric([self.service, "broker"], 0 if s.queues is None else 1)
        up.add_metric([self.service, "database"], 0 if s.unpublished is None else 1)
        yield up
        depth = gauge("baitiao_queue_depth", "Messages waiting in the service's queue", ["queue"])
        for queue, length in (s.queues or {}).items():
            depth.add_metric([self.service, queue], length)
        yield depth
        yield from self._one("baitiao_events_unacked", "Events delivered to a consumer and not acked yet", s.unacked)
        yield from self._one("baitiao_outbox_unpublished", "Outbox rows waiting to be published", s.unpublished)
        yield from self._one(
            "baitiao_outbox_lag_seconds",
            "How long the oldest unpublished outbox row has waited (as scrapes saw it)",
            s.outbox_lag_s,
        )
        yield from self._one("baitiao_dead_letters_pending", "Dead letters not replayed", s.dead_letters)
        finished = gauge(
            "baitiao_job_last_success_timestamp_seconds", "When the job last finished a run (Unix time)", ["job_name"]
        )
        business = gauge(
            "baitiao_job_last_success_business_date_seconds",
            "The latest business date the job finished, as 00:00 Asia/Shanghai of that date (Unix time)",
            ["job_name"],
        )
        for job, (day, finished_at) in sorted(s.jobs.items()):
            business.add_metric([self.service, job], at_local(day).timestamp())
            if finished_at is not None:
                finished.add_metric([self.service, job], finished_at)
        yield finished
        yield business

    def _one(self, name: str, doc: str, value: float | None) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(name, doc, labels=["service"])
        if value is not None:
            family.add_metric([self.service], value)
        yield family
