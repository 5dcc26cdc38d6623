"""The simulator on the bus: an outside system, nothing more.

Customers' events go out through plain kombu with the envelope of EVENTS.md
(routing key = type), exactly as a checkout or a payment gateway would send them.
Everything the services emit is seen through an observer queue bound to ``#``.
Quiescence (nothing left to do anywhere) is read from Redis and the outboxes, so
the next simulated phase never starts while the previous one is still in flight.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
from kombu import Connection, Producer, Queue
from sqlalchemy import Engine, text

from shared.bus.kombu_redis import bindings_read_once, message_body, unacked_keys, waiting_lists
from shared.bus.topology import EVENTS_EXCHANGE, declare_topology, events_queue_name
from shared.events.owners import owner_of
from shared.events.signing import KeyRing, sign_envelope

# Second look after a quiet one: a message popped by BRPOP is in the unacked hash a few
# statements later, but the worker thread may wait for its GIL (5 ms switch interval).
CONFIRM_S = 0.012


@dataclass(frozen=True)
class OutgoingEvent:
    """One customer (or collector) event, already decided, waiting for its phase."""

    type: str
    aggregate_id: str
    payload: dict[str, Any]
    occurred_at: str  # ISO 8601 with offset, inside the simulated day


def envelope(event: OutgoingEvent, event_id: str, producer: str) -> dict[str, Any]:
    """The envelope of EVENTS.md, built by hand as an outside producer does."""
    return {
        "event_id": event_id,
        "type": event.type,
        "version": 1,
        "occurred_at": event.occurred_at,
        "producer": producer,
        "correlation_id": None,
        "causation_id": None,
        "aggregate_id": event.aggregate_id,
        "sequence": None,
        "payload": event.payload,
    }


class Publisher:
    """Plain kombu producer onto the topic exchange. Event ids come from the run's seed,
    so two runs send byte-identical streams."""

    def __init__(self, connection: Connection, seed: int, ring: KeyRing):
        """``ring``: holds the signing key of each outside system the simulator plays."""
        self.connection = connection
        self.ring = ring
        self.producer = Producer(connection.default_channel)
        self._ids = uuid_stream(seed)
        self.sent = 0

    def publish_all(self, events: Iterable[OutgoingEvent]) -> int:
        """Publish a phase's events in one Redis pipeline, as a gateway flushing its outbox would.

        One pipeline, not chunks: the phase's events then reach the queues together, before
        any consequence of them can. Sent in chunks (of 500, say), a service's reply to an
        early chunk (restructuring's ``plan.completed`` to a payment) could reach accounts'
        queue ahead of a later chunk whenever the simulator lost the processor between two
        writes, and the next phase would see another order. The messages of a phase are in
        memory either way."""
        batch = list(events)
        if not batch:
            return 0
        with bindings_read_once(self.producer.channel), self.producer.batch(max_size=len(batch) * 4):
            for event in batch:
                producer = owner_of(event.type) or "customer-app"
                self.producer.publish(
                    sign_envelope(envelope(event, next(self._ids), producer), self.ring.signer(producer)),
                    exchange=EVENTS_EXCHANGE,
                    routing_key=event.type,
                    serializer="json",
                )
        self.sent += len(batch)
        return len(batch)


def uuid_stream(seed: int) -> Any:
    import random

    rng = random.Random(f"event-ids:{seed}")
    while True:
        yield str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Observer:
    """An observer queue bound to every key; read in bulk straight from its Redis list.

    kombu's Redis transport keeps a queue as a list (LPUSH in, BRPOP out) of JSON
    messages whose body is base64; reading the whole list in one MULTI keeps the
    simulator's side cheap next to the workers'.
    """

    def __init__(self, connection: Connection, client: redis.Redis, name: str):
        self.client = client
        self.name = name
        self.queue = Queue(name, exchange=EVENTS_EXCHANGE, routing_key="#", durable=False, auto_delete=False)
        self.queue(connection.default_channel).declare()

    def drain(self) -> list[dict[str, Any]]:
        pipe = self.client.pipeline(transaction=True)
        pipe.lrange(self.name, 0, -1)
        pipe.delete(self.name)
        raw, _ = pipe.execute()
        events = []
        for item in reversed(raw):  # LPUSHed: the oldest is last
            events.append(_decode(item))
        return events

    def delete(self, connection: Connection) -> None:
        self.queue(connection.default_channel).delete()


def _decode(item: bytes) -> dict[str, Any]:
    return json.loads(message_body(item))


class QuiescenceTimeout(RuntimeError):
    pass


class Quiescence:
    """Waits until no service has anything left: queues empty, nothing unacked, outboxes sent."""

    def __init__(
        self,
        client: redis.Redis,
        outboxes: dict[str, Engine],
        services: tuple[str, ...],
        poll_s: float = 0.012,
        check_alive: Callable[[], None] = lambda: None,
    ):
        self.client = client
        self.outboxes = outboxes
        self.queues = [key for s in services for key in waiting_lists(events_queue_name(s))]
        self.unacked = [unacked_keys(s)["unacked_key"] for s in services]
        self.poll_s = poll_s
        self.check_alive = check_alive
        self.polls = 0
        self.waited_s = 0.0

    def busy(self) -> str | None:
        """What is still in flight (None when everything is quiet)."""
        pipe = self.client.pipeline(transaction=False)
        for queue in self.queues:
            pipe.llen(queue)
        for held in self.unacked:
            pipe.hlen(held)
        counts = pipe.execute()
        for name, count in zip(self.queues + self.unacked, counts):
            if count:
                return f"{name}: {count} {'queued' if name in self.queues else 'unacked'}"
        for service, engine in self.outboxes.items():
            with engine.connect() as conn:
                if conn.execute(text("SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT 1")).first():
                    return f"{service}: outbox not yet relayed"
        return None

    def wait(self, timeout: float = 600.0) -> None:
        """Quiet twice in a row: a message popped by a consumer but not yet in the
        unacked hash is invisible for an instant, the second look covers it."""
        started = time.monotonic()
        deadline = started + timeout
        quiet = 0
        last = "?"
        while True:
            self.polls += 1
            state = self.busy()
            if state is None:
                quiet += 1
                if quiet >= 2:
                    self.waited_s += time.monotonic() - started
                    return
                time.sleep(CONFIRM_S)
                continue
            quiet, last = 0, state
            if time.monotonic() > deadline:
                raise QuiescenceTimeout(f"the system did not settle within {timeout}s: {last}")
            if self.polls % 100 == 0:
                self.check_alive()
            time.sleep(self.poll_s)


def prepare_bus(connection: Connection) -> None:
    """Queues and bindings exist before the first publish (kombu drops unroutable messages)."""
    declare_topology(connection)
