"""BulkTake on real Redis: what it pops is acked, restored and redelivered exactly as kombu's own deliveries."""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue

from shared.bus.bulk_take import BulkTake
from shared.bus.consumer import ack_many, events_transport_options
from tests.support.system import fresh_redis_db

EXCHANGE = Exchange("bulk.test", type="topic", durable=False)


@pytest.fixture()
def broker(quiet_redis_db: int) -> Iterator[str]:
    yield fresh_redis_db(quiet_redis_db)


def _queue() -> Queue:
    return Queue(f"bulk.test.{uuid.uuid4().hex[:8]}", exchange=EXCHANGE, routing_key="#", durable=False)


def _publish(url: str, queue: Queue, n: int) -> None:
    with Connection(url) as conn:
        queue(conn.default_channel).declare()
        producer = Producer(conn.default_channel, exchange=EXCHANGE, serializer="json")
        for i in range(n):
            producer.publish({"n": i}, routing_key=f"event.{i % 3}")


def _channel(conn: Connection, queue: Queue):  # type: ignore[no-untyped-def]
    channel = conn.channel()
    queue(channel).declare()
    return channel


def test_takes_in_order_records_unacked_and_acks(broker: str) -> None:
    queue = _queue()
    _publish(broker, queue, 50)
    client = redis.Redis.from_url(broker)
    with Connection(broker, transport_options=events_transport_options(60)) as conn:
        channel = _channel(conn, queue)
        assert BulkTake.supported(channel)
        taken = BulkTake(channel, queue.name).take(20)
        assert [json.loads(m.body)["n"] for m in taken] == list(range(20))
        assert [m.delivery_info["routing_key"] for m in taken[:3]] == ["event.0", "event.1", "event.2"]
        unacked = client.hgetall("baitiao.events.unacked")
        assert len(unacked) == 20 and client.zcard("baitiao.events.unacked_index") == 20
        stored, exchange, routing_key = json.loads(unacked[taken[5].delivery_tag.encode()])
        assert (exchange, routing_key) == ("bulk.test", "event.2")  # kombu's own [message, exchange, key] form
        assert stored["properties"]["delivery_tag"] == taken[5].delivery_tag
        ack_many(taken)
        assert client.hlen("baitiao.events.unacked") == 0 and client.zcard("baitiao.events.unacked_index") == 0
        assert client.llen(queue.name) == 30
        assert len(BulkTake(channel, queue.name).take(100)) == 30
        assert BulkTake(channel, queue.name).take(10) == []


def test_taken_but_never_acked_is_restored_by_the_visibility_sweep(broker: str) -> None:
    """A worker that dies holding a bulk-taken batch loses nothing: kombu's sweep requeues it."""
    queue = _queue()
    _publish(broker, queue, 10)
    client = redis.Redis.from_url(broker)
    dead = Connection(broker, transport_options=events_transport_options(60))
    taken = BulkTake(_channel(dead, queue), queue.name).take(10)
    assert len(taken) == 10 and client.llen(queue.name) == 0
    # The worker is gone (no close, no ack); its deliveries age past the visibility timeout.
    client.zadd("baitiao.events.unacked_index", {m.delivery_tag: time.time() - 120 for m in taken})
    with Connection(broker, transport_options=events_transport_options(60)) as conn:
        channel = _channel(conn, queue)
        # The sweep runs under a Redis mutex shared by every consumer of the database (one
        # held by another consumer's sweep makes this one a no-op) and takes the newest
        # expired entries first (other tests' dead consumers may have left some): sweep
        # again, as kombu does, until ours are back (or 10 s have passed).
        deadline = time.monotonic() + 10
        while client.llen(queue.name) < 10 and time.monotonic() < deadline:
            channel.qos.restore_visible(num=1000, interval=1)
            time.sleep(0.05)
        assert client.llen(queue.name) == 10 and client.hlen("baitiao.events.unacked") == 0
        again = BulkTake(channel, queue.name).take(10)
        assert sorted(json.loads(m.body)["n"] for m in again) == list(range(10))
        assert all(m.delivery_info.get("redelivered") for m in again)
        ack_many(again)


def test_a_cleanly_closed_channel_requeues_what_it_did_not_ack(broker: str) -> None:
    queue = _queue()
    _publish(broker, queue, 5)
    client = redis.Redis.from_url(broker)
    with Connection(broker, transport_options=events_transport_options(60)) as conn:
        channel = _channel(conn, queue)
        taken = BulkTake(channel, queue.name).take(5)
        ack_many(taken[:2])
        channel.close()
    assert client.llen(queue.name) == 3 and client.hlen("baitiao.events.unacked") == 0
