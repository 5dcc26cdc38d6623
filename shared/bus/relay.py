"""The outbox relay: publishes committed outbox rows to the topic exchange, in order.

Rows are taken oldest first in batches. On PostgreSQL one relay at a time publishes a
database's outbox (a transaction-scoped advisory lock): a second relay of the same
service (a scaled-out worker, or a job process publishing its own slice) finds the
lock held and leaves the rows to the holder, so an aggregate's events reach the bus in
the order of their ids. ``FOR UPDATE SKIP LOCKED`` stays as a second guard against
publishing a row twice. A row is stamped ``published_at`` only after the
broker accepted it (a Redis LPUSH has returned), so a crash in between means a
republish with the same event_id, never a loss.

Every envelope leaves signed with the service's key (shared/events/signing.py): the relay
is the one place a service signs, so nothing a service says reaches the bus unsigned.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import timezone
from typing import Any

from kombu.connection import Connection
from kombu.messaging import Producer
from sqlalchemy import BigInteger, Engine, Table, func, literal, select, update

from shared.bus.kombu_redis import bindings_read_once
from shared.bus.topology import EVENTS_EXCHANGE, UNROUTED_QUEUE, declare_topology
from shared.db import is_postgres, transaction
from shared.events.signing import SigningKey, canonical_bytes
from shared import metrics
from shared.clock import Clock, SystemClock

_NOT_FOR_THE_RELAY = frozenset({UNROUTED_QUEUE})
# The advisory lock key of "the outbox relay of this database" (the ASCII of "outbox").
RELAY_LOCK_KEY = 0x6F7574626F78


def envelope_from_row(row: Any, producer: str) -> dict[str, Any]:
    """The EVENTS.md envelope of an outbox row."""
    return {**_envelope_head(row, producer), "payload": json.loads(row.payload)}


def envelope_json(row: Any, signer: SigningKey) -> str:
    """The signed envelope as the JSON text that goes on the wire: its canonical bytes (what
    is signed) with the signature put in before the closing brace, so the envelope is
    written out once, not once to sign and again to send."""
    envelope = {**_envelope_head(row, signer.producer), "key_id": signer.key_id, "payload": json.loads(row.payload)}
    canonical = canonical_bytes(envelope)
    signature = signer.sign(canonical)
    return f'{canonical[:-1].decode("utf-8")},"signature":"{signature}"}}'


def _envelope_head(row: Any, producer: str) -> dict[str, Any]:
    occurred = row.occurred_at
    if occurred.tzinfo is None:  # SQLite hands back naive datetimes
        occurred = occurred.replace(tzinfo=timezone.utc)
    return {
        "event_id": row.event_id,
        "type": row.type,
        "version": 1,
        "occurred_at": occurred.isoformat(),
        "producer": producer,
        "correlation_id": row.correlation_id,
        "causation_id": row.causation_id,
        "aggregate_id": row.aggregate_id,
        "sequence": row.id,
    }


def publish_envelopes(producer: Producer, messages: Iterable[tuple[str, str]]) -> None:
    """Publish ``(routing key, envelope JSON text)`` pairs in one Redis pipeline with kombu's
    ``Producer.batch``, each routing key routed once per batch (:func:`bindings_read_once`).

    The text goes out as it is (its content type given, so kombu does not serialize it
    again). Copies of one message in several queues share kombu's one delivery tag; each
    service keeps its own unacked hash, so that is safe (``kombu_redis.unacked_keys``).

    The catch-all ``unrouted`` queue is left out: these are contract types, routed to
    their consumers, and a copy there would only cost its consumer an ack."""
    messages = list(messages)
    # A message routed to every queue of the bus is three pushes: no flush before the end.
    with (
        bindings_read_once(producer.channel, leave_out=_NOT_FOR_THE_RELAY),
        producer.batch(max_size=4 * len(messages) or 1),
    ):
        for routing_key, body in messages:
            producer.publish(
                body,
                routing_key=routing_key,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
            )


class OutboxRelay:
    """Moves one service's outbox to the bus."""

    def __init__(
        self,
        engine: Engine,
        outbox: Table,
        connection: Connection,
        producer_name: str,
        clock: Clock | None = None,
        signer: SigningKey | None = None,
    ):
        """``signer``: the service's key; by default the one the settings give for ``producer_name``."""
        if signer is None:
            from shared.key_ring import key_ring
            from shared.settings import get_settings

            signer = key_ring(get_settings()).signer(producer_name)
        self.signer = signer
        self.engine = engine
        self.outbox = outbox
        self.connection = connection
        self.producer_name = producer_name
        self._producer: Producer | None = None
        self.clock = clock or SystemClock()

    def _ensure_producer(self) -> Producer:
        if self._producer is None:
            # A few quick tries only: while the broker is away the caller's own backoff waits
            # (RelayLoop), rather than kombu's growing intervals of many seconds.
            self.connection.ensure_connection(max_retries=3, interval_start=0.2, interval_step=0.5, interval_max=2)
            declare_topology(self.connection)
            self._producer = Producer(self.connection.channel(), exchange=EVENTS_EXCHANGE, serializer="json")
        return self._producer

    def reset(self) -> None:
        """Drop the producer after a broker error; the next call reconnects."""
        self._producer = None
        try:
            self.connection.close()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail too
            pass

    def relay_once(self, limit: int = 500) -> int:
        """Publish up to ``limit`` unpublished rows; returns how many went out."""
        producer = self._ensure_producer()
        query = select(self.outbox).where(self.outbox.c.published_at.is_(None)).order_by(self.outbox.c.id).limit(limit)
        with transaction(self.engine) as session:
            if is_postgres(self.engine):
                # PostgreSQL only: SQLite has no advisory locks and no row locks (it takes one
                # writer at a time), so there the plain select is the whole query.
                # The lock is taken by the select itself, one round trip instead of two (the
                # relay polls all day): a scalar subquery PostgreSQL runs once, before the
                # scan (an InitPlan gating it). Held by another relay: no rows; it (or the
                # next poll) takes them.
                holds_lock = select(
                    func.pg_try_advisory_xact_lock(literal(RELAY_LOCK_KEY, BigInteger))
                ).scalar_subquery()
                query = query.where(holds_lock).with_for_update(skip_locked=True)
            rows = session.execute(query).all()
            if not rows:
                return 0
            self.publish(producer, rows)
            session.execute(
                update(self.outbox)
                .where(self.outbox.c.id.in_([row.id for row in rows]))
                .values(published_at=self.clock.now())
            )
        metrics.OUTBOX_PUBLISHED.labels(self.producer_name).inc(len(rows))
        return len(rows)

    def publish(self, producer: Producer, rows: Sequence[Any]) -> None:
        """Put the rows' envelopes on the bus, routed by type, in one Redis pipeline."""
        publish_envelopes(producer, ((row.type, envelope_json(row, self.signer)) for row in rows))

    def drain(self, limit: int = 500) -> int:
        """Publish until the outbox is empty (used by jobs run by hand and tests)."""
        total = 0
        while True:
            sent = self.relay_once(limit)
            total += sent
            if sent == 0:
                return total
