"""The desk's own database: users, account assignments, commands sent, the audit log.

SQLite under the data directory by default, PostgreSQL by URL. Its schema is small and
versioned here (``STEPS``): ``upgrade`` applies the steps a database has not seen, so
``baitiao desk upgrade`` (and the API at start) bring any copy to the newest.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
)
from sqlalchemy.engine import Connection

metadata = MetaData()

schema_version = Table("desk_schema", metadata, Column("version", Integer, primary_key=True))

users = Table(
    "desk_users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(256), nullable=False),
    Column("role", String(16), nullable=False),  # collector | supervisor | operator
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

assignments = Table(
    "desk_assignments",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("collector", String(64), nullable=False),
    Column("assigned_by", String(64), nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
)
Index("ix_desk_assignments_collector", assignments.c.collector, assignments.c.account_id)

commands = Table(
    "desk_commands",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("business_id", String(64), nullable=False),
    Column("aggregate_id", String(64), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("reply_type", String(64), nullable=True),
    Column("reply", Text, nullable=True),  # the reply's payload, JSON
    Column("replied_at", DateTime(timezone=True), nullable=True),
)
Index("ix_desk_commands_business_id", commands.c.business_id)

audit_log = Table(
    "desk_audit",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(64), nullable=False),  # view:account, view:case, command:<type>, ...
    Column("target", String(128), nullable=False),  # the account, case, task or letter
    Column("detail", Text, nullable=True),  # what was shown or sent, without personal data
)
Index("ix_desk_audit_at", audit_log.c.at)


def _create_v1(connection: Connection) -> None:
    metadata.create_all(connection, tables=[users, assignments, commands, audit_log])


STEPS: list[tuple[int, Callable[[Connection], None]]] = [(1, _create_v1)]


def upgrade(engine: Engine) -> int:
    """Apply the steps this database has not seen; returns its version afterwards."""
    with engine.begin() as connection:
        if not inspect(connection).has_table(schema_version.name):
            schema_version.create(connection)
        current = connection.scalar(select(schema_version.c.version).order_by(schema_version.c.version.desc()))
        current = current or 0
        for version, step in STEPS:
            if version > current:
                step(connection)
                connection.execute(schema_version.insert().values(version=version))
                current = version
    return int(current)


def is_current(engine: Engine) -> bool:
    with engine.connect() as connection:
        if not inspect(connection).has_table(schema_version.name):
            return False
        version = connection.scalar(select(schema_version.c.version).order_by(schema_version.c.version.desc()))
    return version == STEPS[-1][0]


def utc_now() -> datetime:
    from datetime import timezone

    return datetime.now(timezone.utc)
