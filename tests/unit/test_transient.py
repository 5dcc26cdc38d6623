"""One classification of "transient" for consumer, relay and jobs (shared/transient.py)."""

from __future__ import annotations

import errno
import random
import sqlite3

import kombu.exceptions
import psycopg
import pytest
import redis.exceptions
from psycopg import errors as pg
from sqlalchemy import exc as sa

from shared.bus.handling import TransientFault
from shared.bus.handling import is_transient as handling_is_transient
from shared.transient import Backoff, is_transient


def _wrapped(
    orig: BaseException, cls: type[sa.DBAPIError] = sa.OperationalError, invalidated: bool = False
) -> sa.DBAPIError:
    """What SQLAlchemy raises for a driver's error."""
    return cls("SELECT 1", {}, orig, connection_invalidated=invalidated)


TRANSIENT = {
    "connection refused (no SQLSTATE)": _wrapped(psycopg.OperationalError("connection failed: Connection refused")),
    "connection closed": _wrapped(psycopg.InterfaceError("the connection is closed"), sa.InterfaceError),
    "invalidated connection": _wrapped(Exception("server closed the connection"), sa.DBAPIError, invalidated=True),
    "08006 connection failure": _wrapped(pg.ConnectionFailure("lost")),
    "57P01 admin shutdown": _wrapped(pg.AdminShutdown("terminating connection due to administrator command")),
    "57P03 starting up": _wrapped(pg.CannotConnectNow("the database system is starting up")),
    "40P01 deadlock": _wrapped(pg.DeadlockDetected("deadlock detected"), sa.DBAPIError),
    "40001 serialization": _wrapped(pg.SerializationFailure("could not serialize access"), sa.DBAPIError),
    "53300 too many connections": _wrapped(pg.TooManyConnections("sorry, too many clients")),
    "55P03 lock not available": _wrapped(pg.LockNotAvailable("could not obtain lock")),
    "unwrapped psycopg refusal": psycopg.OperationalError("connection failed"),
    "unwrapped 57P01": pg.AdminShutdown("terminating"),
    "sqlite locked": _wrapped(sqlite3.OperationalError("database is locked")),
    "pool checkout timeout": sa.TimeoutError("QueuePool limit of size 5 overflow 5 reached"),
    "disconnect": sa.DisconnectionError("gone"),
    "redis refused": redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379"),
    "redis loading": redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
    "redis timeout": redis.exceptions.TimeoutError("Timeout reading from socket"),
    "redis read-only replica": redis.exceptions.ReadOnlyError("You can't write against a read only replica"),
    "kombu operational": kombu.exceptions.OperationalError("Error 111"),
    "kombu no routing table": kombu.exceptions.InconsistencyError("Cannot route message: table empty"),
    "ConnectionRefusedError": ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    "ConnectionResetError": ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    "TimeoutError": TimeoutError("timed out"),
    "OSError host unreachable": OSError(errno.EHOSTUNREACH, "No route to host"),
    "a handler's TransientFault": TransientFault("the scoring service is down"),
}

NOT_TRANSIENT = {
    "23505 unique violation": _wrapped(pg.UniqueViolation("duplicate key"), sa.IntegrityError),
    "42703 undefined column": _wrapped(pg.UndefinedColumn("column does not exist"), sa.ProgrammingError),
    "22003 numeric out of range": _wrapped(pg.NumericValueOutOfRange("out of range"), sa.DataError),
    "57014 statement timeout": _wrapped(pg.QueryCanceled("canceling statement due to statement timeout")),
    "54000 program limit": _wrapped(pg.ProgramLimitExceeded("index row size exceeds maximum")),
    "sqlite no such table": _wrapped(sqlite3.OperationalError("no such table: accounts")),
    "redis wrong password": redis.exceptions.AuthenticationError("invalid password"),
    "redis wrong type": redis.exceptions.ResponseError("WRONGTYPE Operation against a key"),
    "a handler's bug": KeyError("account_id"),
    "bad input": ValueError("amount must be positive"),
    "file not found": FileNotFoundError(errno.ENOENT, "No such file"),
    "permission denied": PermissionError(errno.EACCES, "Permission denied"),
}


@pytest.mark.parametrize("exc", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_a_dependency_away_is_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", NOT_TRANSIENT.values(), ids=NOT_TRANSIENT.keys())
def test_the_work_s_own_failure_is_not(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_a_fault_raised_from_a_transient_one_keeps_its_kind() -> None:
    try:
        try:
            raise redis.exceptions.ConnectionError("refused")
        except redis.exceptions.ConnectionError as cause:
            raise RuntimeError("could not publish") from cause
    except RuntimeError as wrapped:
        assert is_transient(wrapped)
    assert not is_transient(RuntimeError("could not publish"))


def test_the_bus_uses_this_one_classification() -> None:
    assert handling_is_transient is is_transient


def test_backoff_doubles_up_to_its_cap_with_jitter_below_each_ceiling() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(7))
    pauses = [backoff.next() for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(c / 2 <= p <= c for p, c in zip(pauses, ceilings))
    assert len(set(pauses)) == len(pauses)  # jittered: no two waiters in step
    backoff.reset()
    assert backoff.next() <= 0.5
