"""Transactional outbox: events are rows written with the state change they announce.

A handler or job never publishes directly. It calls :meth:`Outbox.emit` inside
its transaction; the relay (:mod:`shared.bus.relay`) publishes committed rows.
If the transaction rolls back, the events vanish with it; if the relay dies
after publishing and before stamping, the row is published again with the same
event_id and the consumers' inbox absorbs the duplicate.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from shared.db import is_postgres
from shared.events.payloads import PAYLOADS, Payload


@dataclass(frozen=True)
class PendingEvent:
    """One event about to be written to the outbox."""

    type: str
    aggregate_id: str
    payload: dict[str, Any]
    occurred_at: datetime
    correlation_id: str | None = None
    causation_id: str | None = None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def payload_json(event_type: str, payload: Payload | dict[str, Any]) -> dict[str, Any]:
    """Validate a payload against the contract and return its wire (JSON) form."""
    model_cls = PAYLOADS[event_type]
    if isinstance(payload, model_cls):
        return payload.model_dump(mode="json")
    if isinstance(payload, Payload):
        raise TypeError(f"{type(payload).__name__} is not the payload of {event_type}")
    return model_cls.model_validate(payload).model_dump(mode="json")


COPY_THRESHOLD = 500


class Outbox:
    """Writes events into one service's outbox table."""

    def __init__(self, table: Table):
        self.table = table

    def emit(
        self,
        session: Session,
        event_type: str,
        payload: Payload | dict[str, Any],
        *,
        aggregate_id: str,
        occurred_at: datetime,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> str:
        """Add one event to the current transaction; returns its event_id."""
        event = PendingEvent(
            event_type, aggregate_id, payload_json(event_type, payload), occurred_at, correlation_id, causation_id
        )
        self.emit_many(session, [event])
        return event.event_id

    def emit_many(self, session: Session, events: Iterable[PendingEvent]) -> int:
        """Set-based insert of many events (the daily close emits ~100k of them)."""
        rows = [
            {
                "event_id": e.event_id,
                "type": e.type,
                "aggregate_id": e.aggregate_id,
                "payload": json.dumps(e.payload, ensure_ascii=False, separators=(",", ":")),
                "occurred_at": e.occurred_at,
                "correlation_id": e.correlation_id or e.event_id,
                "causation_id": e.causation_id,
            }
            for e in events
        ]
        # COPY is PostgreSQL's alone; below the threshold (and on SQLite) one executemany INSERT
        if len(rows) >= COPY_THRESHOLD and is_postgres(session):
            self._copy(session, rows)
        elif rows:
            session.execute(insert(self.table), rows)
        return len(rows)

    def _copy(self, session: Session, rows: list[dict[str, Any]]) -> None:
        """PostgreSQL's COPY: the nightly flood of events in one stream (several times an INSERT's speed)."""
        import psycopg

        columns = list(rows[0])
        dbapi = session.connection().connection.dbapi_connection
        assert isinstance(dbapi, psycopg.Connection)  # COPY is only taken on PostgreSQL
        with dbapi.cursor() as cursor:
            with cursor.copy(f"COPY {self.table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])


class DeferredOutbox(Outbox):
    """The outbox of one consumer transaction: events are kept until it is about to commit,
    then written with one insert (``write``).

    Writing each event as it is emitted costs a statement per event and, worse, flushes
    the session's pending ORM changes row by row each time; kept back, a batch of
    handlers writes its events in one insert (a COPY from 500 on, on PostgreSQL) and
    its changed rows in a few ``executemany`` at the commit. The order of emission is
    kept, so each aggregate's events keep their order on the bus. ``mark`` and
    ``forget_since`` drop the events of a handler that failed in its savepoint.
    """

    def __init__(self, table: Table):
        super().__init__(table)
        self.pending: list[PendingEvent] = []

    def emit_many(self, session: Session, events: Iterable[PendingEvent]) -> int:
        before = len(self.pending)
        self.pending.extend(events)
        return len(self.pending) - before

    def mark(self) -> int:
        return len(self.pending)

    def forget_since(self, mark: int) -> None:
        del self.pending[mark:]

    def write(self, session: Session) -> int:
        written = super().emit_many(session, self.pending)
        self.pending = []
        return written
