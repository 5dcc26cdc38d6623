"""One database per service: engines and transactional sessions.

PostgreSQL in a real deployment, a SQLite file as the embedded default. SQLite
gets WAL and a busy timeout so that a worker's consumer, relay and job threads
can share one file.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Engine, Integer, MetaData, Table, any_, bindparam, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm.util import identity_key
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.schema import ScalarElementColumnDefault

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


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
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


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed. Run through a Session its result is a
    CursorResult, which ``Session.execute``'s types do not say."""
    assert isinstance(result, CursorResult)
    return result.rowcount


def is_postgres(engine_or_session: Engine | Session) -> bool:
    bind = engine_or_session.get_bind() if isinstance(engine_or_session, Session) else engine_or_session
    return bind.dialect.name == "postgresql"


def matches_any(session: Session, column: Any, values: Iterable[Any]) -> Any:
    """``column`` is one of ``values``: ``column = ANY(:array)`` on PostgreSQL (one parameter
    and one cached statement whatever the number of values), ``IN`` elsewhere."""
    values = sorted(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def upsert(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], *, key: str | None, update: Sequence[str] = ()
) -> None:
    """Write ``rows`` into ``table`` in one go: ``INSERT .. ON CONFLICT (key) DO UPDATE`` of
    the ``update`` columns; ``DO NOTHING`` when nothing is to be updated (a row someone
    else wrote first stays theirs); a plain ``INSERT`` without a ``key``.

    Every row names the same columns; the ones it leaves out take their column's scalar
    default, as a Core ``insert`` fills them in (else NULL). Rows with a key go in key
    order, so two transactions writing overlapping rows lock them in one order; a key must
    not repeat. The ORM objects of these rows that the
    session holds are not refreshed (see :func:`expire_loaded`).

    PostgreSQL: one statement whatever the number of rows, the rows in one JSON parameter
    (``jsonb_to_recordset``): a long ``VALUES`` list costs more to compile and convert
    than to run, and an executemany runs the statement once per row. SQLite (embedded, in
    process): an executemany of the dialect's upsert.
    """
    if not rows:
        return
    defaults = _scalar_defaults(table, rows[0])
    if defaults:
        rows = [{**defaults, **row} for row in rows]
    if key is not None:
        rows = sorted(rows, key=lambda row: row[key])
    columns = tuple(rows[0])
    name = session.get_bind().dialect.name
    if name == "postgresql":
        session.execute(
            _pg_upsert(table, columns, key, tuple(update)), {"rows": json.dumps(list(rows), default=_json_value)}
        )
    elif name == "sqlite":
        session.execute(_sqlite_upsert(table, key, tuple(update)), list(rows))
    else:
        raise NotImplementedError(f"no upsert on {name}")


def _scalar_defaults(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """The scalar defaults of the columns of ``table`` that ``row`` leaves out."""
    return {
        column.name: column.default.arg
        for column in table.columns
        if column.name not in row and isinstance(column.default, ScalarElementColumnDefault)
    }


def _json_value(value: Any) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} in an upserted row")


@functools.cache
def _pg_upsert(table: Table, columns: tuple[str, ...], key: str | None, update: tuple[str, ...]) -> Any:
    dialect = postgresql.dialect()
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    record = ", ".join(f"{quote(c)} {table.c[c].type.compile(dialect=dialect)}" for c in columns)
    sql = (
        f"INSERT INTO {quote(table.name)} ({names}) SELECT {names}"
        f" FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({record})"
    )
    if key is not None and not update:
        sql += f" ON CONFLICT ({quote(key)}) DO NOTHING"
    elif key is not None:
        assignments = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in update)
        sql += f" ON CONFLICT ({quote(key)}) DO UPDATE SET {assignments}"
    return text(sql)


@functools.cache
def _sqlite_upsert(table: Table, key: str | None, update: tuple[str, ...]) -> Any:
    stmt = sqlite.insert(table)
    if key is None:
        return stmt
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=[table.c[key]])
    return stmt.on_conflict_do_update(index_elements=[table.c[key]], set_={c: stmt.excluded[c] for c in update})


def expire_loaded(session: Session, model: type, keys: Iterable[Any]) -> None:
    """Rows a Core statement just wrote: an ORM object of the session loaded before it would
    keep the old values, so it is expired (reloaded when next used)."""
    for key in keys:
        obj = session.identity_map.get(identity_key(model, key))
        if obj is not None:
            session.expire(obj)
