"""BulkTake on real Redis: what it pops is acked, restored and redelivered exactly as kombu's own deliveries."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.transport.virtual import Channel

from shared.bus.kombu_redis import (
    BulkTake,
    ack_many,
    events_transport_options,
    landing_key,
    sweep_expired,
    unacked_keys,
)
from shared.bus.relay import publish_envelopes
from tests.support.system import fresh_redis_db

EXCHANGE = Exchange("bulk.test", type="topic", durable=False)
SERVICE = "bulk-test"
HELD = unacked_keys(SERVICE)["unacked_key"]
HELD_INDEX = unacked_keys(SERVICE)["unacked_index_key"]


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


def _channel(conn: Connection, queue: Queue) -> Channel:
    channel: Channel = conn.channel()
    queue(channel).declare()
    return channel


def test_takes_in_order_records_unacked_and_acks(broker: str) -> None:
    queue = _queue()
    _publish(broker, queue, 50)
    client = redis.Redis.from_url(broker)
    with Connection(broker, transport_options=events_transport_options(60, SERVICE)) as conn:
        channel = _channel(conn, queue)
        assert BulkTake.supported(channel)
        taken = BulkTake(channel, queue.name).take(20)
        assert [json.loads(m.body)["n"] for m in taken] == list(range(20))
        assert [m.delivery_info["routing_key"] for m in taken[:3]] == ["event.0", "event.1", "event.2"]
        unacked = client.hgetall(HELD)
        assert len(unacked) == 20 and client.zcard(HELD_INDEX) == 20
        stored, exchange, routing_key = json.loads(unacked[taken[5].delivery_tag.encode()])
        # kombu's own [message, exchange, routing key] form, naming the queue itself: a
        # restore goes back to this queue, not to every queue bound to the topic
        assert (exchange, routing_key) == ("", queue.name)
        assert stored["properties"]["delivery_info"]["routing_key"] == "event.2"
        assert stored["properties"]["delivery_tag"] == taken[5].delivery_tag
        ack_many(taken)
        assert client.hlen(HELD) == 0 and client.zcard(HELD_INDEX) == 0
        assert client.llen(queue.name) == 30
        assert len(BulkTake(channel, queue.name).take(100)) == 30
        assert BulkTake(channel, queue.name).take(10) == []


def test_taken_but_never_acked_is_restored_by_the_visibility_sweep(broker: str) -> None:
    """A worker that dies holding a bulk-taken batch loses nothing: kombu's sweep requeues it."""
    queue = _queue()
    _publish(broker, queue, 10)
    client = redis.Redis.from_url(broker)
    dead = Connection(broker, transport_options=events_transport_options(60, SERVICE))
    taken = BulkTake(_channel(dead, queue), queue.name).take(10)
    assert len(taken) == 10 and client.llen(queue.name) == 0
    # The worker is gone (no close, no ack); its deliveries age past the visibility timeout.
    client.zadd(HELD_INDEX, {m.delivery_tag: time.time() - 120 for m in taken})
    with Connection(broker, transport_options=events_transport_options(60, SERVICE)) as conn:
        channel = _channel(conn, queue)
        # The sweep runs under a Redis mutex shared by every consumer of the database (one
        # held by another consumer's sweep makes this one a no-op) and takes the newest
        # expired entries first (other tests' dead consumers may have left some): sweep
        # again, as kombu does, until ours are back (or 10 s have passed).
        deadline = time.monotonic() + 10
        while client.llen(queue.name) < 10 and time.monotonic() < deadline:
            channel.qos.restore_visible(num=1000, interval=1)
            time.sleep(0.05)
        assert client.llen(queue.name) == 10 and client.hlen(HELD) == 0
        again = BulkTake(channel, queue.name).take(10)
        assert sorted(json.loads(m.body)["n"] for m in again) == list(range(10))
        assert all(m.delivery_info.get("redelivered") for m in again)
        ack_many(again)


def test_a_cleanly_closed_channel_requeues_what_it_did_not_ack(broker: str) -> None:
    queue = _queue()
    _publish(broker, queue, 5)
    client = redis.Redis.from_url(broker)
    with Connection(broker, transport_options=events_transport_options(60, SERVICE)) as conn:
        channel = _channel(conn, queue)
        taken = BulkTake(channel, queue.name).take(5)
        ack_many(taken[:2])
        channel.close()
    assert client.llen(queue.name) == 3 and client.hlen(HELD) == 0


def _relay_one(url: str, routing_key: str, body: dict[str, int]) -> None:
    with Connection(url) as conn:
        EXCHANGE(conn.default_channel).declare()  # the relay's topology, declared at its start
        publish_envelopes(Producer(conn.default_channel, exchange=EXCHANGE), [(routing_key, json.dumps(body))])


def _publish_one(url: str, routing_key: str, body: dict[str, int]) -> None:
    """As an outside system would: kombu's producer tags the publish once, for every queue."""
    with Connection(url) as conn:
        Producer(conn.default_channel, exchange=EXCHANGE, serializer="json").publish(body, routing_key=routing_key)


@pytest.mark.parametrize("send", [_relay_one, _publish_one], ids=["relayed", "published-by-kombu"])
def test_each_services_copy_of_one_event_is_held_and_restored_on_its_own(
    broker: str, send: Callable[[str, str, dict[str, int]], None]
) -> None:
    """One event bound to two services' queues. The first service acking its copy must
    leave the other's copy held while that one is applied (with one unacked hash for the
    bus, the shared delivery tag made that ack delete both entries: a crash then lost the
    second copy, and a watcher saw an idle bus mid-batch); the dead worker's copy comes
    back after the visibility timeout, to its own queue only."""
    first, second = _queue(), _queue()
    client = redis.Redis.from_url(broker)
    alive = Connection(broker, transport_options=events_transport_options(60, "svc-a"))
    dead = Connection(broker, transport_options=events_transport_options(60, "svc-b"))
    channel_a, channel_b = _channel(alive, first), _channel(dead, second)
    send(broker, "event.0", {"n": 7})
    [copy_a] = BulkTake(channel_a, first.name).take(10)
    [copy_b] = BulkTake(channel_b, second.name).take(10)
    ack_many([copy_a])
    held_b = unacked_keys("svc-b")
    assert client.hlen(held_b["unacked_key"]) == 1 and client.hlen(unacked_keys("svc-a")["unacked_key"]) == 0
    # svc-b's worker dies holding its copy; the copy ages past the visibility timeout.
    client.zadd(held_b["unacked_index_key"], {copy_b.delivery_tag: time.time() - 120})
    with Connection(broker, transport_options=events_transport_options(60, "svc-b")) as conn:
        channel = _channel(conn, second)
        sweep_expired(channel)
        assert (client.llen(second.name), client.llen(first.name)) == (1, 0)
        [again] = BulkTake(channel, second.name).take(10)
        assert json.loads(again.body) == {"n": 7} and again.delivery_info.get("redelivered")
        ack_many([again])
    assert client.hlen(held_b["unacked_key"]) == 0
    alive.release()


def _where(client: redis.Redis, queue: Queue) -> tuple[int, int, int]:
    """How many of the queue's messages are queued, landed and held unacked."""
    return client.llen(queue.name), client.llen(landing_key(queue.name)), client.hlen(HELD)


def test_kombus_own_consumer_holds_a_message_nowhere_between_two_drains(broker: str) -> None:
    """Why the bus does not consume through kombu's BRPOP: after a ``drain_events`` that
    timed out, kombu's BRPOP is still outstanding; Redis pops the next message into the
    socket and kombu records it as held only at the next drain. A worker killed in between
    loses it: it is neither queued nor held, so no sweep can bring it back."""
    queue = _queue()
    client = redis.Redis.from_url(broker)
    received: list[object] = []
    with Connection(broker, transport_options=events_transport_options(60, SERVICE)) as conn:
        channel = _channel(conn, queue)
        with Consumer(channel, queues=[queue], on_message=received.append, accept=None):
            with contextlib.suppress(TimeoutError, socket.timeout):
                conn.drain_events(timeout=0.01)
            _publish(broker, queue, 1)
            time.sleep(0.2)
            assert _where(client, queue) == (0, 0, 0) and received == []  # the message is nowhere
            conn.drain_events(timeout=1.0)
            assert len(received) == 1 and _where(client, queue) == (0, 0, 1)


def test_a_wait_leaves_nothing_outstanding_and_takes_what_comes(broker: str) -> None:
    queue = _queue()
    client = redis.Redis.from_url(broker)
    with Connection(broker, transport_options=events_transport_options(60, SERVICE)) as conn:
        bulk = BulkTake(_channel(conn, queue), queue.name)
        started = time.monotonic()
        assert bulk.wait(10, 0.05) == []
        assert 0.04 <= time.monotonic() - started < 1.0  # it waited its timeout, not kombu's second
        _publish(broker, queue, 1)
        time.sleep(0.1)
        assert _where(client, queue) == (1, 0, 0)  # still queued: nobody popped it
        _publish(broker, queue, 2)
        taken = bulk.wait(10, 1.0)
        assert [json.loads(m.body)["n"] for m in taken] == [0, 0, 1]
        assert _where(client, queue) == (0, 0, 3)
        ack_many(taken)


def test_a_message_landed_by_a_killed_consumer_is_taken_first_by_the_next(broker: str) -> None:
    """A worker killed between its blocking wait's BLMOVE and the take that records the
    message leaves it on the landing list, where the next take of the queue finds it."""
    queue = _queue()
    client = redis.Redis.from_url(broker)
    _publish(broker, queue, 3)
    assert client.blmove(queue.name, landing_key(queue.name), 1, "RIGHT", "LEFT") is not None  # then killed
    assert _where(client, queue) == (2, 1, 0)
    with Connection(broker, transport_options=events_transport_options(60, SERVICE)) as conn:
        taken = BulkTake(_channel(conn, queue), queue.name).wait(10, 1.0)
        assert [json.loads(m.body)["n"] for m in taken] == [0, 1, 2]  # the landed one first: it is the oldest
        assert _where(client, queue) == (0, 0, 3)
        ack_many(taken)


def test_a_message_on_a_priority_sub_list_is_taken(broker: str) -> None:
    queue = _queue()
    client = redis.Redis.from_url(broker)
    with Connection(broker) as conn:
        queue(conn.default_channel).declare()
        Producer(conn.default_channel, exchange=EXCHANGE, serializer="json").publish(
            {"n": 9}, routing_key="event.0", priority=5
        )
    with Connection(broker, transport_options=events_transport_options(60, SERVICE)) as conn:
        [taken] = BulkTake(_channel(conn, queue), queue.name).wait(10, 0.05)
        assert json.loads(taken.body) == {"n": 9} and client.hlen(HELD) == 1
        ack_many([taken])
