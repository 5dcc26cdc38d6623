"""The catch-all queue on real Redis and PostgreSQL: what no binding takes is kept, the rest acked.

What must hold: a message an outside producer publishes on a key the contract does not
know (``foo.bar``) lands in ``unrouted`` and is dead-lettered ``unknown_type`` there;
contract traffic (a known type, or a key a service's queue is bound to) is acked with no
dead letter; the queue and its unacked hash end empty; the services' relays never put a
copy in the catch-all.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Producer
from sqlalchemy import MetaData, select

from shared.bus.handling import BusTables
from shared.bus.kombu_redis import unacked_keys
from shared.bus.relay import publish_envelopes
from shared.bus.tables import add_bus_tables
from shared.bus.topology import EVENTS_EXCHANGE, UNROUTED_QUEUE, declare_topology
from shared.bus.unrouted import UnroutedWatch, is_contract_traffic
from shared.clock import SystemClock
from tests.support.customers import purchase
from tests.support.system import REDIS_HOST, REDIS_PORT, envelope, fresh_redis_db, scratch_database

pytestmark = pytest.mark.integration
metadata = MetaData()
_bus = add_bus_tables(metadata)
TABLES = BusTables(_bus["outbox"], _bus["inbox"], _bus["dead_letters"])


@pytest.fixture()
def engine() -> Iterator[Any]:
    with scratch_database("bt_unrouted", metadata) as engine:
        yield engine


@pytest.fixture()
def broker(quiet_redis_db: int) -> Iterator[tuple[str, redis.Redis]]:
    url = fresh_redis_db(quiet_redis_db)
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=quiet_redis_db)
    with Connection(url) as conn:
        declare_topology(conn)
    yield url, client
    client.flushdb()


def test_contract_traffic_is_known_by_its_routing_key() -> None:
    assert is_contract_traffic("purchase.requested") and is_contract_traffic("purchase.approved")
    assert is_contract_traffic("plan.teleported")  # collections' queue takes plan.*: it judges it
    assert not is_contract_traffic("foo.bar") and not is_contract_traffic("") and not is_contract_traffic(None)


def _wait_empty(client: redis.Redis, timeout: float = 20.0) -> None:
    held = unacked_keys(UNROUTED_QUEUE)["unacked_key"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.llen(UNROUTED_QUEUE) == 0 and client.hlen(held) == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"unrouted still holds {client.llen(UNROUTED_QUEUE)} queued, {client.hlen(held)} unacked")


def test_the_watch_keeps_unknown_types_and_acks_the_rest(engine: Any, broker: tuple[str, redis.Redis]) -> None:
    url, client = broker
    unknown = envelope("foo.bar", {"hello": "world"}, "acc-1")
    known = [envelope("purchase.requested", purchase("acc-1", "1.00"), "acc-1") for _ in range(300)]
    with Connection(url) as conn:
        declare_topology(conn)  # kombu routes by the exchange type its connection declared
        producer = Producer(conn.default_channel)
        for body in known[:150]:
            producer.publish(body, exchange=EVENTS_EXCHANGE, routing_key="purchase.requested", serializer="json")
        producer.publish(unknown, exchange=EVENTS_EXCHANGE, routing_key="foo.bar", serializer="json")
        producer.publish(
            b"{junk",
            exchange=EVENTS_EXCHANGE,
            routing_key="nothing.here",
            content_type="application/json",
            content_encoding="utf-8",
        )
        producer.publish(
            envelope("plan.teleported", {}, "acc-1"),
            exchange=EVENTS_EXCHANGE,
            routing_key="plan.teleported",
            serializer="json",
        )
        for body in known[150:]:
            producer.publish(body, exchange=EVENTS_EXCHANGE, routing_key="purchase.requested", serializer="json")
    assert client.llen(UNROUTED_QUEUE) == 303

    watch = UnroutedWatch("accounts", url, engine, TABLES.dead_letters, SystemClock(), visibility_timeout=60)
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    try:
        _wait_empty(client)
    finally:
        watch.stop()
        thread.join(10)

    with engine.connect() as conn:
        letters = list(conn.execute(select(TABLES.dead_letters).order_by(TABLES.dead_letters.c.id)))
    assert [(row.queue, row.event_id, row.body) for row in letters] == [
        ("unrouted", unknown["event_id"], json.dumps(unknown)),
        ("unrouted", None, "{junk"),
    ]
    assert all(row.reason.startswith("unknown_type") for row in letters)
    assert client.llen("accounts.events") == 300  # the known ones reached their queue as before


def test_the_relay_leaves_the_catch_all_out(broker: tuple[str, redis.Redis]) -> None:
    url, client = broker
    bodies = [envelope("repayment.applied", {}, "acc-1"), envelope("purchase.approved", {}, "acc-1")]
    with Connection(url) as conn:
        declare_topology(conn)
        producer = Producer(conn.channel(), exchange=EVENTS_EXCHANGE, serializer="json")
        publish_envelopes(producer, [(body["type"], json.dumps(body)) for body in bodies])
    assert (client.llen("collections.events"), client.llen("restructuring.events")) == (1, 1)
    assert client.llen(UNROUTED_QUEUE) == 0
    with Connection(url) as conn:  # the same envelopes from an outside producer: the catch-all gets copies
        declare_topology(conn)
        outside = Producer(conn.default_channel)
        for body in bodies:
            outside.publish(body, exchange=EVENTS_EXCHANGE, routing_key=body["type"], serializer="json")
    assert client.llen(UNROUTED_QUEUE) == 2
