"""The bus's use of kombu's Redis internals (``shared/bus/kombu_redis.py``) against kombu's own code.

On real Redis and PostgreSQL, read raw where it matters:

- what the relay publishes is, document for document, what kombu's ``Producer.publish``
  writes for the same message to the same queues (only the delivery tag differs: kombu
  draws a fresh one for every publish);
- what :class:`BulkTake` records is what kombu's ``QoS.append`` records (the one deliberate
  difference: where a restore goes), kombu's own restores (the visibility sweep, a channel
  closed cleanly) put a bulk-taken message back on its own queue only, and a plain kombu
  consumer then receives it;
- :func:`ack_many` removes what it acks, and only that, from the unacked hash and index.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Producer
from kombu.message import Message
from sqlalchemy import MetaData, select

from shared.bus.kombu_redis import (
    BulkTake,
    ack_many,
    events_transport_options,
    message_body,
    unacked_keys,
)
from shared.bus.outbox import Outbox, PendingEvent
from shared.bus.relay import OutboxRelay, envelope_from_row, publish_envelopes
from shared.events.signing import sign_envelope
from shared.bus.tables import add_bus_tables
from shared.bus.topology import EVENTS_EXCHANGE, declare_topology, events_queue, events_queue_name
from shared.db import transaction
from tests.support.system import fresh_redis_db, scratch_database

pytestmark = pytest.mark.integration
metadata = MetaData()
OUTBOX = add_bus_tables(metadata)["outbox"]
AT = datetime(2026, 3, 20, 16, 30, tzinfo=timezone.utc)
TYPE = "repayment.applied"  # bound by collections and restructuring, not by accounts
QUEUES = [events_queue_name(s) for s in ("accounts", "collections", "restructuring")]
HERE = events_queue_name("collections")
HELD = unacked_keys("collections")


@pytest.fixture()
def broker(quiet_redis_db: int) -> Iterator[str]:
    url = fresh_redis_db(quiet_redis_db)
    with Connection(url) as connection:
        declare_topology(connection)
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture()
def client(broker: str) -> redis.Redis:
    return redis.Redis.from_url(broker)


def _payload(n: int = 0) -> dict[str, Any]:
    return {
        "payment_id": f"p-{n}",
        "account_id": "A1",
        "amount": "120.00",
        "paid_at": AT.isoformat(),
        "applied": [{"bill_id": "b-1", "penalty": "0.00", "late_fee": "0.00", "principal": "120.00"}],
    }


def _pop_all(client: redis.Redis) -> dict[str, list[dict[str, Any]]]:
    """Every queue's documents, oldest first, parsed, and the queues emptied."""
    found = {}
    for queue in QUEUES:
        found[queue] = [json.loads(d) for d in reversed(client.lrange(queue, 0, -1))]
        client.delete(queue)
    return found


def _comparable(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its body decoded and parsed and its delivery tag set aside."""
    properties = dict(document["properties"])
    tag = properties.pop("delivery_tag")
    assert isinstance(tag, str) and tag
    body = json.loads(message_body(json.dumps(document)))
    return {**document, "body": body, "properties": properties}


def test_the_relay_writes_what_kombus_producer_writes_for_the_same_message(broker: str, client: redis.Redis) -> None:
    with scratch_database("bt_kombu_contract", metadata) as engine:
        with transaction(engine) as session:
            Outbox(OUTBOX).emit_many(session, [PendingEvent(TYPE, "A1", _payload(), AT, correlation_id="pay-1")])
        relay = OutboxRelay(engine, OUTBOX, Connection(broker), "accounts")
        assert relay.relay_once() == 1
        with engine.connect() as conn:  # the relay signs: the same envelope, signed by the same key
            envelope = sign_envelope(envelope_from_row(conn.execute(select(OUTBOX)).one(), "accounts"), relay.signer)
    relayed = _pop_all(client)

    with Connection(broker) as conn:  # as any outside system publishes with kombu
        Producer(conn.default_channel, exchange=EVENTS_EXCHANGE, serializer="json").publish(envelope, routing_key=TYPE)
    published = _pop_all(client)

    assert (
        {q: len(d) for q, d in relayed.items()}
        == {q: len(d) for q, d in published.items()}
        == {"accounts.events": 0, "collections.events": 1, "restructuring.events": 1}
    )
    for queue in ("collections.events", "restructuring.events"):
        [ours], [kombus] = relayed[queue], published[queue]
        assert set(ours) == set(kombus) and set(ours["properties"]) == set(kombus["properties"])
        assert _comparable(ours) == _comparable(kombus)
        assert _comparable(ours)["body"] == envelope
        assert ours["properties"]["priority"] == 0  # on the queue's base list, where BulkTake reads


def _publish(broker: str, n: int) -> list[dict[str, Any]]:
    """``n`` events relayed to collections' (and restructuring's) queue; collections' documents as stored."""
    bodies = [{"event_id": f"e-{i}", "type": TYPE, "payload": _payload(i)} for i in range(n)]
    with Connection(broker) as conn:
        publish_envelopes(
            Producer(conn.default_channel, exchange=EVENTS_EXCHANGE), [(TYPE, json.dumps(b)) for b in bodies]
        )
    return [json.loads(d) for d in reversed(redis.Redis.from_url(broker).lrange(HERE, 0, -1))]


def _held(client: redis.Redis) -> tuple[dict[str, Any], dict[str, float]]:
    entries = {tag.decode(): json.loads(raw) for tag, raw in client.hgetall(HELD["unacked_key"]).items()}
    index = {tag.decode(): score for tag, score in client.zrange(HELD["unacked_index_key"], 0, -1, withscores=True)}
    return entries, index


def _deliver_by_kombu(connection: Connection, channel: Any, count: int) -> list[Message]:
    """What kombu's own BRPOP path delivers to an events consumer (recorded by ``QoS.append``)."""
    delivered: list[Message] = []
    with Consumer(channel, [events_queue("collections")], on_message=delivered.append, accept=None, prefetch_count=100):
        while len(delivered) < count:
            connection.drain_events(timeout=2)
    return delivered


def test_a_bulk_take_records_what_kombus_own_delivery_records(broker: str, client: redis.Redis) -> None:
    stored = _publish(broker, 4)
    with Connection(broker, transport_options=events_transport_options(60, "collections")) as conn:
        channel = conn.channel()
        before = time.time()
        [by_kombu] = _deliver_by_kombu(conn, channel, 1)
        by_bulk = BulkTake(channel, HERE).take(10)
        after = time.time()
        assert len(by_bulk) == 3 and client.llen(HERE) == 0
        entries, index = _held(client)
        assert set(entries) == set(index) == {m.delivery_tag for m in [by_kombu, *by_bulk]}
        assert all(before - 1 <= score <= after + 1 for score in index.values())
        assert entries[by_kombu.delivery_tag] == [stored[0], EVENTS_EXCHANGE.name, TYPE]  # kombu's QoS.append
        for message, document in zip(by_bulk, stored[1:]):
            # the same [document, exchange, routing key] form; the restore goes to this queue only
            assert entries[message.delivery_tag] == [document, "", HERE]
            assert message.delivery_info["routing_key"] == TYPE
            assert message.body == message_body(json.dumps(document))
        ack_many([by_kombu, *by_bulk])


def _receive_with_plain_kombu(broker: str) -> list[Message]:
    received: list[Message] = []

    def take(body: Any, message: Message) -> None:
        received.append(message)
        message.ack()

    with Connection(broker) as conn, Consumer(conn, [events_queue("collections")], callbacks=[take], accept=["json"]):
        try:
            while True:
                conn.drain_events(timeout=0.5)
        except TimeoutError:
            return received


@pytest.mark.parametrize("restore", ["visibility_sweep", "closed_channel"])
def test_kombu_restores_a_bulk_taken_message_to_its_own_queue(broker: str, client: redis.Redis, restore: str) -> None:
    [document] = _publish(broker, 1)
    assert client.llen(events_queue_name("restructuring")) == 1  # the other service's copy
    holder = Connection(broker, transport_options=events_transport_options(1, "collections"))
    channel = holder.channel()
    [taken] = BulkTake(channel, HERE).take(10)
    assert client.llen(HERE) == 0 and client.hlen(HELD["unacked_key"]) == 1
    if restore == "visibility_sweep":  # the holder died; another consumer sweeps past the timeout
        time.sleep(1.3)
        with Connection(broker, transport_options=events_transport_options(1, "collections")) as other:
            other.channel().qos.restore_visible(num=10, interval=1)
    else:
        channel.close()
    assert [client.llen(q) for q in QUEUES] == [0, 1, 1]  # back here, and nowhere else
    assert client.hlen(HELD["unacked_key"]) == 0 and client.zcard(HELD["unacked_index_key"]) == 0

    [again] = _receive_with_plain_kombu(broker)
    assert again.body == taken.body and json.loads(again.body) == json.loads(message_body(json.dumps(document)))
    assert again.delivery_info.get("redelivered") is True
    assert again.delivery_info["routing_key"] == TYPE  # its topic kept: only the restore went to this queue
    assert client.llen(HERE) == 0
    holder.release()


def test_ack_many_removes_what_it_acks_and_only_that(broker: str, client: redis.Redis) -> None:
    _publish(broker, 6)
    with Connection(broker, transport_options=events_transport_options(60, "collections")) as conn:
        channel = conn.channel()
        by_kombu = _deliver_by_kombu(conn, channel, 2)
        by_bulk = BulkTake(channel, HERE).take(10)
        assert len(by_bulk) == 4
        acked, kept = [by_kombu[0], *by_bulk[:2]], [by_kombu[1], *by_bulk[2:]]
        ack_many(acked)
        entries, index = _held(client)
        assert set(entries) == set(index) == {m.delivery_tag for m in kept}
        assert all(m.acknowledged for m in acked) and not any(m.acknowledged for m in kept)
        ack_many(kept)
        assert client.hlen(HELD["unacked_key"]) == 0 and client.zcard(HELD["unacked_index_key"]) == 0
    assert [client.llen(q) for q in QUEUES] == [0, 0, 6]  # closing restored nothing: all were acked
