"""One database per service: engines and transactional sessions.

PostgreSQL in a real deployment, a SQLite file as the embedded default. SQLite
gets WAL and a busy timeout so that a worker's consumer, relay and job threads
can share one file.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from typing import Any

from sqlalchemy import BigInteger, Engine, Integer, MetaData, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.orm.util import identity_key

# Autoincrementing 64-bit keys: SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_base() -> type[DeclarativeBase]:
    """A fresh declarative base with its own MetaData: one per service database."""

    class Base(DeclarativeBase):
        metadata = MetaData(naming_convention=NAMING)

    return Base


_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, echo: bool = False) -> Engine:
    """An engine for one service database (not cached; see :func:`engine_for`)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No ping before each checkout: it cost a round trip per transaction (4% of the
    # simulator's 10,000-account run, and a sixth of PostgreSQL's CPU). A connection lost
    # to a restart fails its first statement instead; SQLAlchemy then drops the pool, the
    # consumer retries the batch whole (a transient fault) and a job runs its slice once
    # more (shared/jobs.py, run_slice). tests/integration/test_lost_connection.py
    return create_engine(url, echo=echo, pool_size=5, max_overflow=5)


def engine_for(url: str, echo: bool = False) -> Engine:
    """The process-wide engine for a URL (created once, shared by threads)."""
    with _lock:
        if url not in _engines:
            _engines[url] = make_engine(url, echo)
        return _engines[url]


def dispose_engines(close: bool = True) -> None:
    """Forget every engine (between tests that swap databases; ``close=False`` in a child
    just forked, whose inherited connections belong to the parent and must not be closed)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=close)
        _engines.clear()


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def is_postgres(engine_or_session: Engine | Session) -> bool:
    bind = engine_or_session.get_bind() if isinstance(engine_or_session, Session) else engine_or_session
    return bind.dialect.name == "postgresql"


def upsert_insert(session: Session) -> Any:
    """The dialect's ``insert`` (with ``on_conflict_do_update`` / ``_do_nothing``) for the
    session's database; None on a database that has no upsert."""
    return {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(session.get_bind().dialect.name)


def expire_loaded(session: Session, model: type, keys: Iterable[Any]) -> None:
    """Rows a Core statement just wrote: an ORM object of the session loaded before it would
    keep the old values, so it is expired (reloaded when next used)."""
    for key in keys:
        obj = session.identity_map.get(identity_key(model, key))
        if obj is not None:
            session.expire(obj)
