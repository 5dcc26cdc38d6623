"""The dead-letter store: list what could not be applied, and replay it.

Replay publishes the original body again straight to the service's own queue
(kombu's default exchange routes by queue name), so that only the service that
failed sees it again. A replayed event that was in fact applied meanwhile is
absorbed by the inbox.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kombu import Connection, Producer
from sqlalchemy import Engine, Table, select, update

from shared.bus.topology import declare_topology
from shared.db import transaction


@dataclass(frozen=True)
class DeadLetter:
    id: int
    queue: str
    event_id: str | None
    type: str | None
    reason: str
    body: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None


def list_dead_letters(engine: Engine, table: Table, include_replayed: bool = False, limit: int = 100) -> list[DeadLetter]:
    query = select(table).order_by(table.c.id.desc()).limit(limit)
    if not include_replayed:
        query = query.where(table.c.replayed_at.is_(None))
    with transaction(engine) as session:
        return [DeadLetter(**row._mapping) for row in session.execute(query)]


def replay_dead_letter(engine: Engine, table: Table, letter_id: int, connection: Connection, now: datetime) -> DeadLetter:
    """Publish a dead letter's original body to its queue again and stamp it replayed."""
    with transaction(engine) as session:
        row = session.execute(select(table).where(table.c.id == letter_id)).first()
        if row is None:
            raise LookupError(f"no dead letter {letter_id}")
        letter = DeadLetter(**row._mapping)
        declare_topology(connection)
        producer = Producer(connection.channel())
        producer.publish(
            letter.body.encode("utf-8"),
            exchange="",
            routing_key=letter.queue,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
        )
        session.execute(update(table).where(table.c.id == letter_id).values(replayed_at=now))
    return letter
