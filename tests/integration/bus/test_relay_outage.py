"""The outbox relay across a Redis SIGKILL: a row is stamped published only once Redis
has taken it, so what was stamped before the kill is on Redis after the restart (its AOF
holds every write it answered), what could not be sent meanwhile stays unstamped, and
the relay loop sends it by itself once Redis is back."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from kombu import Connection
from sqlalchemy import MetaData, select

from shared.bus.kombu_redis import message_body
from shared.bus.outbox import Outbox, PendingEvent
from shared.bus.relay import OutboxRelay
from shared.bus.tables import add_bus_tables
from shared.bus.topology import declare_topology
from shared.celery_app import RelayLoop
from shared.db import transaction
from tests.support.outages import PrivateRedis
from tests.support.system import poll_until, scratch_database

pytestmark = pytest.mark.integration
metadata = MetaData()
OUTBOX = add_bus_tables(metadata)["outbox"]
AT = datetime(2026, 3, 20, 16, 30, tzinfo=timezone.utc)


@pytest.fixture()
def engine() -> Iterator[Any]:
    with scratch_database("bt_relay_outage", metadata) as engine:
        yield engine


@pytest.fixture()
def broker() -> Iterator[PrivateRedis]:
    server = PrivateRedis(appendonly=True)
    server.start()
    yield server
    server.destroy()


def _emit(engine: Any, accounts: list[str]) -> None:
    with transaction(engine) as session:
        Outbox(OUTBOX).emit_many(
            session,
            [PendingEvent("account.cured", a, {"account_id": a, "business_date": "2026-03-20"}, AT) for a in accounts],
        )


def _stamped(engine: Any) -> dict[str, bool]:
    with engine.connect() as conn:
        return {row.event_id: row.published_at is not None for row in conn.execute(select(OUTBOX))}


def _on_queue(url: str, queue: str) -> list[str]:
    """The event_ids waiting on a service's queue (read, not taken)."""
    with Connection(url) as connection:
        client = connection.default_channel.client
        return [json.loads(message_body(raw))["event_id"] for raw in client.lrange(queue, 0, -1)]


def test_what_was_stamped_survives_the_kill_and_the_rest_goes_out_after_it(engine: Any, broker: PrivateRedis) -> None:
    url = broker.url(0)
    with Connection(url) as connection:
        declare_topology(connection)
    loop = RelayLoop(
        OutboxRelay(engine, OUTBOX, Connection(url), "accounts"),
        poll_s=0.05,
        service="accounts",
        outage_backoff_max_s=0.5,
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        _emit(engine, ["A1", "A2", "A3"])
        poll_until(lambda: all(_stamped(engine).values()))
        before = set(_stamped(engine))
        broker.kill()
        _emit(engine, ["B1", "B2", "B3"])
        loop.wake.set()
        time.sleep(2)  # the relay tries, and fails, several times
        stamped = _stamped(engine)
        assert {e for e, done in stamped.items() if not done} == set(stamped) - before  # not sent: not stamped
        broker.start()
        poll_until(lambda: all(_stamped(engine).values()))  # the loop went on by itself
    finally:
        loop.stop()
        thread.join(timeout=10)
    assert sorted(_on_queue(url, "collections.events")) == sorted(_stamped(engine))  # the first three too
    assert thread.is_alive() is False
