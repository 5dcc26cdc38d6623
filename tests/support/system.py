"""A running system for integration and end-to-end tests: real PostgreSQL, real Redis, real workers.

``Databases`` creates three fresh PostgreSQL databases and migrates them.
``OutsideSystem`` is what an outside producer is: plain kombu, the envelope of
EVENTS.md, and an observer queue bound to every key so it sees all the replies.
``Workers`` starts ``baitiao worker <service>`` processes with that environment,
and can SIGKILL and restart them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue
from sqlalchemy import Engine, MetaData, create_engine, text

from baitiao.processes import die_with_parent

REDIS_HOST = os.environ.get("BAITIAO_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("BAITIAO_TEST_REDIS_PORT", "6379"))
PG_BASE = os.environ.get("BAITIAO_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


@contextmanager
def scratch_database(prefix: str, metadata: MetaData) -> Iterator[Engine]:
    """A new PostgreSQL database with ``metadata``'s tables, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(f"{PG_BASE}/{name}")
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


SERVICES = ("accounts", "collections", "restructuring")
EXCHANGE = Exchange("baitiao.events", type="topic", durable=True)
ROOT = Path(__file__).resolve().parents[2]


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def fresh_redis_db(db: int) -> str:
    """An emptied Redis database for one test session (the CI machine is ours alone)."""
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()
    return redis_url(db)


@dataclass
class Databases:
    """Three fresh, migrated PostgreSQL databases, dropped on ``drop()``."""

    prefix: str = field(default_factory=lambda: f"bt_{uuid.uuid4().hex[:8]}")
    base: str = PG_BASE  # another PostgreSQL server (a test's private cluster): its URL without a database

    def url(self, service: str) -> str:
        return f"{self.base}/{self.prefix}_{service}"

    def env(self) -> dict[str, str]:
        return {f"BAITIAO_{s.upper()}_DB_URL": self.url(s) for s in SERVICES}

    def create(self, services: tuple[str, ...] = SERVICES) -> "Databases":
        from baitiao import registry
        from shared.migrations import upgrade

        for service in services:
            upgrade(registry.definition(service), self.url(service))
        return self

    def drop(self) -> None:
        from shared.db import dispose_engines

        dispose_engines()
        admin = create_engine(f"{self.base}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for service in SERVICES:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.prefix}_{service}" WITH (FORCE)'))
        admin.dispose()


def envelope(
    event_type: str,
    payload: dict[str, Any],
    aggregate_id: str,
    *,
    event_id: str | None = None,
    occurred_at: str = "2026-03-01T10:00:00+08:00",
    producer: str | None = None,
) -> dict[str, Any]:
    """An envelope exactly as EVENTS.md shows it, built by hand (no project code), not yet
    signed; ``producer`` by default the type's owner."""
    from shared.events.owners import owner_of

    producer = producer or owner_of(event_type) or "test-outside"
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "type": event_type,
        "version": 1,
        "occurred_at": occurred_at,
        "producer": producer,
        "correlation_id": None,
        "causation_id": None,
        "aggregate_id": aggregate_id,
        "sequence": None,
        "payload": payload,
    }


class OutsideSystem:
    """An outside producer and observer speaking only EVENTS.md through plain kombu."""

    def __init__(
        self,
        broker_url: str,
        observer: str | None = None,
        transport_options: dict[str, Any] | None = None,
        ring: Any = None,
        ssl: dict[str, Any] | None = None,
    ):
        """``observer``: the name of an observer queue to attach to again (after a broker
        restart) instead of a new one. ``ring``: the keys it signs with (default: the test
        session's, tests/support/signing.py). ``ssl``: kombu's ssl options, for a
        ``rediss://`` broker."""
        from tests.support.signing import TEST_RING

        self.ring = ring or TEST_RING
        self.conn = Connection(broker_url, transport_options=transport_options or {}, ssl=ssl or False)
        self.conn.ensure_connection(max_retries=3)
        self.observer = Queue(
            observer or f"test.observer.{uuid.uuid4().hex[:8]}",
            exchange=EXCHANGE,
            routing_key="#",
            durable=False,
            auto_delete=False,
        )
        self.observer(self.conn.default_channel).declare()
        self._declare_service_queues()
        self.producer = Producer(self.conn.default_channel)
        self.seen: list[dict[str, Any]] = []
        self._consumer = Consumer(self.conn, [self.observer], on_message=self._on_message, accept=None)
        self._consumer.consume()

    def _declare_service_queues(self) -> None:
        """Our queues and bindings exist before the first publish (kombu drops unroutable messages)."""
        from shared.bus.topology import declare_topology

        declare_topology(self.conn)

    def _on_message(self, message: Any) -> None:
        try:
            self.seen.append(json.loads(message.body))
        except ValueError:
            pass  # our own junk test messages come back to the observer too
        message.ack()

    def publish(
        self, event_type: str, payload: dict[str, Any], aggregate_id: str, *, sign: bool = True, **kw: Any
    ) -> dict[str, Any]:
        """Publish an envelope signed as its type's owner (``sign=False``: as built, unsigned);
        returns what went out."""
        return self.publish_raw(envelope(event_type, payload, aggregate_id, **kw), event_type, sign=sign)

    def publish_raw(self, body: Any, routing_key: str, *, sign: bool = True) -> Any:
        """Publish ``body``. A dict without a signature is signed by its type's owner first
        (its ``producer`` becomes the owner), as every real outside producer signs; ``sign=False``,
        bytes and text go out as they are (forged, tampered and unsigned messages)."""
        if sign and isinstance(body, dict) and "signature" not in body and isinstance(body.get("type"), str):
            from shared.events.owners import owner_of
            from tests.support.signing import signed_as_owner

            if owner_of(body["type"]) is not None:
                body = signed_as_owner(body, self.ring)
        if isinstance(body, (bytes, str)):
            self.producer.publish(
                body,
                exchange=EXCHANGE,
                routing_key=routing_key,
                content_type="application/json",
                content_encoding="utf-8",
            )
        else:
            self.producer.publish(body, exchange=EXCHANGE, routing_key=routing_key, serializer="json")
        return body

    def pump(self, seconds: float = 0.2) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.conn.drain_events(timeout=max(0.01, deadline - time.monotonic()))
            except (TimeoutError, OSError):
                pass

    def events(self, event_type: str, where: Callable[[dict[str, Any]], bool] = lambda p: True) -> list[dict[str, Any]]:
        return [e for e in self.seen if e.get("type") == event_type and where(e.get("payload", {}))]

    def wait_for(
        self,
        event_type: str,
        where: Callable[[dict[str, Any]], bool] = lambda p: True,
        timeout: float = 30.0,
        count: int = 1,
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` events of a type matching ``where`` were seen; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(event_type, where)
            if len(found) >= count:
                return found
            self.pump(0.1)
        raise AssertionError(
            f"no {count} x {event_type} within {timeout}s; seen types: {sorted({e.get('type') for e in self.seen})}"
        )

    def close(self) -> None:
        try:
            self.observer(self.conn.default_channel).delete()
        finally:
            self.conn.close()


@dataclass
class Workers:
    """``baitiao worker <service>`` processes with the test environment."""

    env: dict[str, str]
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, service: str, extra_env: dict[str, str] | None = None) -> None:
        env = {**os.environ, **self.env, **(extra_env or {})}
        env.pop("BAITIAO_FAULT", None) if not extra_env or "BAITIAO_FAULT" not in extra_env else None
        log = open(self.log_dir / f"{service}.log", "ab")
        self.procs[service] = subprocess.Popen(
            [sys.executable, "-m", "baitiao.cli", "worker", service, "--loglevel", "WARNING"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def start_all(self, services: tuple[str, ...] = SERVICES) -> None:
        for service in services:
            self.start(service)

    def kill(self, service: str) -> None:
        proc = self.procs.pop(service)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def wait_exit(self, service: str, timeout: float = 60) -> int:
        proc = self.procs[service]
        rc = proc.wait(timeout=timeout)
        del self.procs[service]
        return rc

    def stop_all(self) -> None:
        for service, proc in list(self.procs.items()):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for service, proc in list(self.procs.items()):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def alive(self, service: str) -> bool:
        proc = self.procs.get(service)
        return proc is not None and proc.poll() is None


def run_cli(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the ``baitiao`` command line as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "baitiao.cli", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def poll_until(condition: Callable[[], Any], timeout: float = 30) -> None:
    """Poll ``condition`` every 50 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def row_count(engine: Engine, table: str) -> int:
    """How many rows ``table`` of ``engine``'s database holds now."""
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)
