"""The bus's own tables, created in every service's database beside its business tables.

- ``outbox``: events written in the same transaction as the state change;
  the relay publishes them and stamps ``published_at``. The row id is the
  event's ``sequence`` (increasing per aggregate because it increases globally).
- ``inbox``: event ids already applied; checked and written inside the
  handler's transaction, which is what makes redelivery harmless.
- ``dead_letters``: what could not be applied, with the original body and why; an
  operator replays a letter or discards it (with a reason), both on the record.
- ``bus_meta``: this database's instance id, the namespace of derived event ids.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text, text

from shared.db import BigId


def add_bus_tables(metadata: MetaData) -> dict[str, Table]:
    """Declare the bus tables on a service's MetaData (so Alembic migrates them)."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=True, unique=True),
        Column("type", String(64), nullable=False),
        Column("aggregate_id", String(64), nullable=False),
        Column("payload", Text, nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("correlation_id", String(64), nullable=True),
        Column("causation_id", String(64), nullable=True),
        Column("published_at", DateTime(timezone=True), nullable=True),
    )
    Index(
        "ix_outbox_unpublished",
        outbox.c.id,
        postgresql_where=text("published_at IS NULL"),
        sqlite_where=text("published_at IS NULL"),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("type", String(64), nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False),
    )
    dead_letters = Table(
        "dead_letters",
        metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("queue", String(64), nullable=False),
        Column("event_id", String(64), nullable=True),
        Column("type", String(64), nullable=True),
        Column("reason", Text, nullable=False),
        Column("body", Text, nullable=False),
        Column("attempts", Integer, nullable=False, server_default="1"),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("replayed_at", DateTime(timezone=True), nullable=True),
        # Retired on the record by an operator (``baitiao dlq discard``): never replayed.
        Column("discarded_at", DateTime(timezone=True), nullable=True),
        Column("discard_reason", Text, nullable=True),
    )
    bus_meta = Table(
        "bus_meta",
        metadata,
        Column("key", String(64), primary_key=True),
        Column("value", String(256), nullable=False),
    )
    return {"outbox": outbox, "inbox": inbox, "dead_letters": dead_letters, "bus_meta": bus_meta}
