"""The catch-all queue's consumer: a message of a type the contract does not know is kept.

kombu's Redis transport drops a message that matches no binding, so an outside
producer's ``foo.bar`` would vanish at the exchange. The ``unrouted`` queue is bound to
``#`` (shared/bus/topology.py) and gets a copy of everything outside producers publish
(the services' relays leave it out). This watch drains it in bulk: a routing key the
contract knows, or one some service's queue is bound to (that service judges the
message itself), is acked with no database work; anything else is dead-lettered
``unknown_type`` in the watching service's dead letters, queue ``unrouted``.

It runs inside every worker of the service whose definition says so
(``ServiceDefinition.watches_unrouted``: accounts, which the outside systems talk to);
several workers share the queue as competing consumers. While none runs, the queue
fills as that service's own queue does.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from kombu.connection import Connection
from kombu.messaging import Consumer
from kombu.message import Message
from sqlalchemy import Engine, Table, insert

from shared import metrics
from shared.broker import broker_connection
from shared.bus.kombu_redis import BulkTake, ack_many, events_transport_options, sweep_expired
from shared.bus.topology import UNROUTED_QUEUE, declare_topology, reaches_a_service, unrouted_queue
from shared.clock import Clock
from shared.db import transaction
from shared.events.payloads import PAYLOADS
from shared.log import get_logger
from shared.settings import Settings

log = get_logger(__name__)


def is_contract_traffic(routing_key: str | None) -> bool:
    """A message some queue of the contract takes care of: nothing for the catch-all to keep."""
    if not routing_key:
        return False
    return routing_key in PAYLOADS or reaches_a_service(routing_key)


class UnroutedWatch:
    """Drains ``unrouted`` until stopped: acks contract traffic in bulk, dead-letters the rest."""

    def __init__(
        self,
        service: str,
        broker_url: str,
        engine: Engine,
        dead_letters: Table,
        clock: Clock,
        visibility_timeout: int = 60,
        batch_size: int = 500,
        sweep_every_s: float = 5.0,
        settings: Settings | None = None,
    ):
        self.service = service
        self.broker_url = broker_url
        self.settings = settings
        self.engine = engine
        self.dead_letters = dead_letters
        self.clock = clock
        self.visibility_timeout = visibility_timeout
        self.batch_size = batch_size
        self.sweep_every_s = sweep_every_s
        self.stopping = threading.Event()
        self._held: list[Message] = []

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        """Watch until stopped; reconnects with backoff when the broker or database goes away
        (what was taken and not acked is restored by the visibility sweep)."""
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                options = events_transport_options(self.visibility_timeout, UNROUTED_QUEUE)
                with broker_connection(self.broker_url, self.settings, transport_options=options) as conn:
                    conn.ensure_connection(max_retries=3)
                    declare_topology(conn)
                    self._watch(conn)
                backoff = 0.5
            except Exception as exc:  # noqa: BLE001 - broker or database down: wait, retry
                log.warning("unrouted_watch_reconnect", service=self.service, error=str(exc)[:300], backoff_s=backoff)
                self._held.clear()
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _on_message(self, message: Message) -> None:
        self._held.append(message)

    def _watch(self, conn: Connection) -> None:
        channel = conn.channel()
        queue = unrouted_queue()
        if not BulkTake.supported(channel):  # kombu's own BRPOP: only off kombu's Redis transport
            with Consumer(
                channel, queues=[queue], on_message=self._on_message, prefetch_count=self.batch_size * 2, accept=None
            ):
                self._watch_with(channel, lambda: self._drain(conn))
            return
        bulk = BulkTake(channel, queue.name)
        self._watch_with(channel, lambda: self._held.extend(bulk.wait(self.batch_size - len(self._held), 1.0)))

    def _drain(self, conn: Connection) -> None:
        try:
            conn.drain_events(timeout=1.0)
        except (socket.timeout, TimeoutError):
            pass

    def _watch_with(self, channel: Any, receive: Callable[[], None]) -> None:
        """Receive, settle what came, sweep the expired: until told to stop."""
        next_sweep = time.monotonic()
        while not self.stopping.is_set():
            if time.monotonic() >= next_sweep:
                sweep_expired(channel)
                next_sweep = time.monotonic() + self.sweep_every_s
            receive()
            held, self._held = self._held, []
            if held:
                self.settle(held)

    def settle(self, messages: list[Message]) -> int:
        """Dead-letter the messages no queue of the contract takes (one transaction), then ack
        them all in one round trip; returns how many were dead-lettered."""
        unknown = [m for m in messages if not is_contract_traffic(m.delivery_info.get("routing_key"))]
        if unknown:
            rows = [self._dead_letter_row(m) for m in unknown]
            with transaction(self.engine) as session:
                session.execute(insert(self.dead_letters), rows)
            metrics.DEAD_LETTERS.labels(self.service).inc(len(rows))
        ack_many(messages)
        return len(unknown)

    def _dead_letter_row(self, message: Message) -> dict[str, Any]:
        body = message.body if isinstance(message.body, bytes) else str(message.body).encode("utf-8")
        routing_key = message.delivery_info.get("routing_key")
        event_id = event_type = None
        try:
            data = json.loads(body)
            if isinstance(data, dict):
                event_id, event_type = data.get("event_id"), data.get("type")
        except ValueError:
            pass
        reason = f"unknown_type: routing key {routing_key!r} is no event type of the contract and reaches no service"
        log.error(
            "dead_letter",
            service=self.service,
            queue=UNROUTED_QUEUE,
            routing_key=str(routing_key)[:64],
            reason="unknown_type",
        )
        return {
            "queue": UNROUTED_QUEUE,
            "event_id": event_id[:64] if isinstance(event_id, str) else None,
            "type": event_type[:64] if isinstance(event_type, str) else None,
            "reason": reason,
            "body": body.decode("utf-8", errors="replace"),
            "attempts": 1,
            "created_at": self.clock.now(),
        }
