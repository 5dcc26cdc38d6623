"""Which failures are the world's and not the work's: one answer for consumer, relay and jobs.

A *transient* fault is a dependency being away (PostgreSQL restarting, Redis killed, the
network cut) or PostgreSQL settling a conflict by rolling one side back. It says nothing
about the message or the slice in hand, so it never counts against them: the consumer
keeps its batch and tries it again, the relay keeps its rows, a job slice runs again from
the state it was given, all after a jittered, capped exponential pause (:class:`Backoff`),
for as long as the outage lasts. Anything else a handler raises is that event's own
failure (a poison message): counted, retried a bounded number of times, dead-lettered.

Transient:

- a handler's own :class:`TransientFault` (a dependency it calls is down);
- SQLAlchemy: a connection it invalidated, a disconnect, its pool's checkout timeout;
- a database error whose SQLSTATE is of class 08 (connection), 40 (deadlock,
  serialization failure), 57P (administrator or crash shutdown, "starting up"), or is
  53300 (too many connections) or 55P03 (lock not available); a psycopg
  ``OperationalError`` with no SQLSTATE (the client could not reach the server at all);
  SQLite's "database is locked";
- Redis and kombu: connection and timeout errors, "loading the dataset", a routing table
  not there yet (``InconsistencyError``), a read-only replica after a failover;
- ``ConnectionError``, ``TimeoutError``, and the ``OSError``s of a network that is away.

Not transient: a SQLSTATE of any other class (a constraint, a bad statement, a query
cancelled by ``statement_timeout``), and every other exception. A cause chained with
``raise … from`` is looked at too, so a fault wrapped by a library keeps its kind.
"""

from __future__ import annotations

import errno
import random
import socket
import sqlite3

import kombu.exceptions
import psycopg
import redis.exceptions
from sqlalchemy import exc as sa

# SQLSTATE prefixes (classes or single codes) of a fault worth waiting out.
TRANSIENT_SQLSTATES = ("08", "40", "57P", "53300", "55P03")

_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EHOSTDOWN,
        errno.ENOTCONN,
    }
)

_BROKER_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,  # BusyLoadingError ("LOADING") is one
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    kombu.exceptions.OperationalError,
    kombu.exceptions.InconsistencyError,
)


class TransientFault(RuntimeError):
    """Raised by a handler for a fault worth retrying the whole batch for (a dependency down)."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or a cause it was raised from) is a dependency being away."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _transient_itself(current):
            return True
        current = current.__cause__
    return False


def _transient_itself(exc: BaseException) -> bool:
    if isinstance(exc, TransientFault | sa.DisconnectionError | sa.TimeoutError):
        return True
    if isinstance(exc, sa.DBAPIError):
        return bool(exc.connection_invalidated) or _database_fault(exc.orig)
    if isinstance(exc, redis.exceptions.AuthenticationError):
        return False  # a wrong password is configuration, not an outage
    if isinstance(exc, _BROKER_ERRORS):
        return True
    if isinstance(exc, psycopg.Error | sqlite3.Error):  # a driver's error SQLAlchemy did not wrap
        return _database_fault(exc)
    if isinstance(exc, ConnectionError | TimeoutError | socket.timeout | socket.gaierror):
        return True
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS


def _database_fault(orig: BaseException | None) -> bool:
    """A driver's error: transient by its SQLSTATE, or by being a failure to reach the server."""
    if orig is None:
        return False
    sqlstate = str(getattr(orig, "sqlstate", "") or "")
    if sqlstate:
        return sqlstate.startswith(TRANSIENT_SQLSTATES)
    if isinstance(orig, sqlite3.OperationalError):  # also "no such table": only a lock waits
        text = str(orig).lower()
        return "locked" in text or "busy" in text
    # psycopg with no SQLSTATE: the server never answered (refused, reset, unreachable).
    return isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError)


class Backoff:
    """Jittered, capped exponential pauses: ``first``, doubling up to ``cap``, each drawn
    uniformly from its upper half so that many waiters do not retry in step.

    ``next()`` gives the next pause; ``reset()`` after a success starts again from ``first``.
    """

    def __init__(self, first: float = 0.5, cap: float = 5.0, rng: random.Random | None = None):
        self.first = first
        self.cap = cap
        self._rng = rng or random.Random()
        self._ceiling = first

    def next(self) -> float:
        ceiling = min(self._ceiling, self.cap)
        self._ceiling = min(self._ceiling * 2, self.cap)
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._ceiling = self.first
