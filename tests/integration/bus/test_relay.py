"""The outbox relay on real PostgreSQL and Redis: what reaches each queue, in what form.

What must hold: every committed row goes out once, as the EVENTS.md envelope (the stored
payload unchanged, ``sequence`` = the row's id) to exactly the queues bound to its type;
rows are stamped ``published_at`` so a second pass sends nothing; a batch mixing types
routes each type by its own bindings (the routes are kept per batch).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer
from sqlalchemy import MetaData, select, text

from shared.bus.outbox import Outbox, PendingEvent
from shared.bus.relay import RELAY_LOCK_KEY, OutboxRelay, envelope_from_row
from shared.events.signing import sign_envelope
from shared.bus.tables import add_bus_tables
from shared.bus.topology import declare_topology, events_queue
from shared.db import transaction
from shared.events.envelope import read_event
from tests.support.system import fresh_redis_db, scratch_database

pytestmark = pytest.mark.integration
metadata = MetaData()
OUTBOX = add_bus_tables(metadata)["outbox"]
AT = datetime(2026, 3, 20, 16, 30, tzinfo=timezone.utc)


@pytest.fixture()
def engine() -> Iterator[Any]:
    with scratch_database("bt_relay", metadata) as engine:
        yield engine


@pytest.fixture()
def broker(quiet_redis_db: int) -> Iterator[str]:
    url = fresh_redis_db(quiet_redis_db)
    with Connection(url) as connection:
        declare_topology(connection)
    yield url
    redis.Redis.from_url(url).flushdb()


def _events() -> list[PendingEvent]:
    cured = [
        PendingEvent(
            "account.cured",
            f"A{k}",
            {"account_id": f"A{k}", "business_date": "2026-03-20"},
            AT,
            correlation_id=f"pay-{k}",
        )
        for k in range(3)
    ]
    closed = PendingEvent("collection.case.closed", "A0", {"account_id": "A0", "reason": "cured"}, AT)
    offered = PendingEvent("plan.offers.requested", "A1", {"account_id": "A1", "request_id": "r-1"}, AT)
    return [cured[0], closed, cured[1], offered, cured[2]]


def _received(url: str, service: str) -> list[bytes]:
    """The raw bodies waiting on the service's events queue, in order."""
    bodies: list[bytes] = []
    with Connection(url) as connection:

        def take(body: Any, message: Any) -> None:
            bodies.append(message.body)
            message.ack()

        with Consumer(connection, [events_queue(service)], callbacks=[take], accept=["json"]):
            while True:
                try:
                    connection.drain_events(timeout=0.3)
                except TimeoutError:
                    return bodies


def test_each_row_reaches_exactly_its_bound_queues_as_the_envelope(engine: Any, broker: str) -> None:
    with transaction(engine) as session:
        Outbox(OUTBOX).emit_many(session, _events())
    relay = OutboxRelay(engine, OUTBOX, Connection(broker), "collections")
    assert relay.relay_once() == 5
    assert relay.relay_once() == 0  # stamped: nothing goes out twice
    with engine.connect() as conn:
        rows = conn.execute(select(OUTBOX).order_by(OUTBOX.c.id)).all()
    assert all(row.published_at is not None for row in rows)
    # the envelope, signed by the relay with its service's key
    expected = {row.event_id: sign_envelope(envelope_from_row(row, "collections"), relay.signer) for row in rows}

    by_service = {
        service: [json.loads(b) for b in _received(broker, service)]
        for service in ("accounts", "collections", "restructuring")
    }
    types = {service: [m["type"] for m in messages] for service, messages in by_service.items()}
    assert types == {
        "accounts": [],  # bound to none of these types
        "collections": ["account.cured"] * 3,
        "restructuring": ["account.cured", "account.cured", "plan.offers.requested", "account.cured"],
    }
    for messages in by_service.values():
        for message in messages:
            assert message == expected[message["event_id"]]  # the signed envelope, payload as stored
            envelope, payload = read_event(json.dumps(message).encode())  # and valid on the wire contract
            assert envelope.sequence == message["sequence"] and payload.account_id == message["aggregate_id"]


def test_one_relay_at_a_time_publishes_a_database_outbox(engine: Any, broker: str) -> None:
    """A second relay of the same outbox (a scaled-out worker, a job process publishing its
    own slice) leaves the rows to the one publishing, so an aggregate's events cannot
    overtake each other on two relays at once; once the first is done, it may go."""
    with transaction(engine) as session:
        Outbox(OUTBOX).emit_many(session, _events())
    first = OutboxRelay(engine, OUTBOX, Connection(broker), "collections")
    second = OutboxRelay(engine, OUTBOX, Connection(broker), "collections")
    with engine.connect() as holder:  # what the first relay holds while it publishes
        assert holder.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": RELAY_LOCK_KEY}).scalar()
        assert second.relay_once() == 0
        holder.rollback()  # its transaction ends: the lock goes with it
    assert second.relay_once() == 5
    assert first.relay_once() == 0
    assert len(_received(broker, "restructuring")) == 4
