"""Holding a service's batch handlers equal on runs of every length: the machinery the tests share.

A batch handler is the only implementation of its event type: a batch of one is the
per-event path. So what it must hold to is itself: the same wire bodies (``bodies``) go
into fresh databases of the service (the ``databases`` fixture a test module makes with
``databases_fixture``: PostgreSQL and the embedded default's SQLite), through its
registered handlers, once one event per transaction, then in batches of several sizes and
in a batch the applier has to redo guarded (a ``Poison`` event):
``Service.assert_batches_agree``. What the rows must be, the tests' scenarios say. Any
service will do (``Service("collections")``: its tables, bus and registered handlers come
from ``baitiao.registry.definition``). ``Service.state`` is what must then be the same:
every row the service keeps and every event it wrote to its outbox, with its causation
and correlation ids.

Also here: the runs a batch handler gets (``counting``), ORM objects kept alive through a
block (``objects_kept_alive``), the statements a batch sends (``Service.statements``) and
a batch handler's arguments built by hand (``Service.handler_run``).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Table, create_engine, event, select, text
from sqlalchemy.orm import Session

from baitiao import registry
from shared.bus.handling import BatchHandler, Delivery, EventApplier, HandlerContext
from shared.bus.outbox import Outbox
from shared.clock import FixedClock
from shared.db import make_engine
from shared.events import new_envelope
from shared.events.envelope import read_event
from shared.migrations import upgrade
from shared.rules import ProductRules
from shared.service import ServiceDefinition
from tests.support.system import PG_BASE

Event = tuple[str, dict[str, Any]]
Handlers = dict[str, Any]
State = dict[str, list[dict[str, Any]]]

# --- events -----------------------------------------------------------------------------------


def bodies(events: list[Event], start: datetime) -> list[bytes]:
    """Wire bodies, each event a second after the one before (handlers run at their event's
    time); every other one carries a correlation id of its own."""
    return [
        json.dumps(
            new_envelope(
                event_type,
                payload,
                aggregate_id=payload["account_id"],
                producer="test",
                occurred_at=start + timedelta(seconds=k),
                correlation_id=f"checkout-{k}" if k % 2 else None,
            )
        ).encode()
        for k, (event_type, payload) in enumerate(events)
    ]


@dataclass(frozen=True)
class Poison:
    """A failing ``event`` at ``occurred_at``, put into one batch before ``wire[at]``: the
    optimistic pass fails on it, the applier redoes the batch guarded (every event alone, in
    a savepoint) and dead-letters the poison. Its type must be one the service handles."""

    at: int
    event: Event
    occurred_at: datetime

    @classmethod
    def plan_completed(cls, at: int, account_id: str, occurred_at: datetime) -> Poison:
        """A ``plan.completed`` of ``account_id`` that day (accounts and collections handle it)."""
        return cls(
            at,
            (
                "plan.completed",
                {"plan_id": "pl-poison", "account_id": account_id, "completed_on": occurred_at.date().isoformat()},
            ),
            occurred_at,
        )

    def body(self) -> bytes:
        (body,) = bodies([self.event], self.occurred_at)
        return body


def _boom(ctx: Any, event: Any) -> None:
    raise RuntimeError("poison")


# --- handlers ---------------------------------------------------------------------------------


def counting(handlers: Handlers, event_type: str, runs: list[int]) -> Handlers:
    """``handlers`` with the batch handler of ``event_type`` noting the length of each run it gets."""
    batch = handlers[event_type]
    assert isinstance(batch, BatchHandler)

    def counted(items: list[Any]) -> None:
        runs.append(len(items))
        batch.fn(items)

    return {**handlers, event_type: BatchHandler(counted)}


@contextmanager
def objects_kept_alive() -> Iterator[list[object]]:
    """Every ORM object a session loads or flushes, kept referenced until the block ends.

    A session's identity map holds its clean objects weakly: one nothing else refers to is
    gone when its run returns, and the next run of the transaction loads it afresh. Whether
    an object is still referenced (by a later handler, a cycle not yet collected, another
    interpreter) must not change a decision: kept alive, an object some Core UPDATE changed
    behind the session's back is served stale to whoever loads it without
    ``populate_existing``, and the equivalence shows it.
    """
    kept: list[object] = []

    def keep(session: Session, instance: object) -> None:
        kept.append(instance)

    for name in ("loaded_as_persistent", "pending_to_persistent"):
        event.listen(Session, name, keep)
    try:
        yield kept
    finally:
        for name in ("loaded_as_persistent", "pending_to_persistent"):
            event.remove(Session, name, keep)


@contextmanager
def statements_sent(engine: Engine) -> Iterator[list[str]]:
    """Every statement ``engine`` sends while the block runs, as sent."""
    statements: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", note)


# --- rows -------------------------------------------------------------------------------------


def rows(engine: Engine, table: Table, *order: Any, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        found = conn.execute(select(table).order_by(*order)).mappings().all()
    return [{k: v for k, v in row.items() if k not in skip} for row in found]


# --- a service --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """One service under test: applying wire bodies to its databases and reading back its state."""

    name: str

    @cached_property
    def definition(self) -> ServiceDefinition:
        return registry.definition(self.name)

    @property
    def handlers(self) -> Handlers:
        """The registered handlers, batch handlers among them."""
        return self.definition.handlers

    def applier(self, engine: Engine, handlers: Handlers) -> EventApplier:
        return EventApplier(
            self.name,
            engine,
            self.definition.bus,
            handlers,
            ProductRules(),
            FixedClock(),
            max_attempts=1,
            event_time=True,
        )

    def apply(self, engine: Engine, handlers: Handlers, wire: list[bytes], batch: int) -> None:
        """``wire`` in batches of ``batch`` (one transaction each); every event must be applied."""
        events = self.applier(engine, handlers)
        for k in range(0, len(wire), batch):
            deliveries = [Delivery(body=b) for b in wire[k : k + batch]]
            outcome = events.apply_batch(deliveries)
            assert not outcome.dead_lettered and not outcome.retry, [d.last_error for d in deliveries]

    def apply_with_poison(self, engine: Engine, handlers: Handlers, wire: list[bytes], poison: Poison) -> None:
        """``wire`` in one batch with ``poison`` in it: all of ``wire`` applied, the poison dead-lettered."""
        failing = {**handlers, poison.event[0]: _boom}
        outcome = self.applier(engine, failing).apply_batch(
            [Delivery(body=b) for b in wire[: poison.at] + [poison.body()] + wire[poison.at :]]
        )
        assert outcome.applied == len(wire) and outcome.dead_lettered == 1 and not outcome.retry

    def prepared(
        self,
        fresh: Callable[[], Engine],
        handlers: Handlers,
        setup: list[bytes],
        then: Callable[[Engine], None] | None = None,
    ) -> Engine:
        """A fresh database with ``setup`` applied one event per transaction, then ``then`` done."""
        engine = fresh()
        self.apply(engine, handlers, setup, 1)
        if then is not None:
            then(engine)
        return engine

    def statements(self, engine: Engine, handlers: Handlers, wire: list[bytes], batch: int | None = None) -> list[str]:
        """The statements applying ``wire`` sends, as one batch or in batches of ``batch``."""
        with statements_sent(engine) as sent:
            self.apply(engine, handlers, wire, batch or len(wire))
        return sent

    def handler_run(self, session: Session, wire: list[bytes]) -> list[tuple[HandlerContext, Any]]:
        """A batch handler's arguments for ``wire``, inside the open transaction of ``session``."""
        outbox = Outbox(self.definition.bus.outbox)
        return [
            (HandlerContext(session, envelope, outbox, ProductRules(), FixedClock()), payload)
            for envelope, payload in map(read_event, wire)
        ]

    # --- the state that must be the same ---

    def state(self, engine: Engine) -> State:
        """Every row the service keeps, table by table in primary-key order, and its outbox
        (payloads parsed). Left out: the bus's own bookkeeping (inbox, dead letters,
        ``bus_meta``) and the jobs' (``job_runs``: which run, or which share of one, did a
        date), surrogate ids no other row refers to (PostgreSQL's sequences may skip
        some), the outbox's own event ids and publish stamps."""
        bus = self.definition.bus
        bookkeeping = {"bus_meta", bus.inbox.name, bus.dead_letters.name, "job_runs"}
        found = {
            table.name: rows(engine, table, *table.primary_key.columns, skip=self._left_out(table))
            for table in self.definition.metadata.sorted_tables
            if table.name not in bookkeeping
        }
        for row in found[bus.outbox.name]:
            row["payload"] = json.loads(row["payload"])
        return found

    def _left_out(self, table: Table) -> tuple[str, ...]:
        """The columns of ``table`` its state leaves out."""
        surrogate = table.autoincrement_column
        left_out = (surrogate.name,) if surrogate is not None and not self._referred_to(surrogate) else ()
        if table is self.definition.bus.outbox:
            left_out += ("event_id", "published_at")
        return left_out

    def _referred_to(self, column: Column[Any]) -> bool:
        """Whether a foreign key points at ``column`` (then its values are part of what the rows say)."""
        return any(
            key.column is column for table in self.definition.metadata.sorted_tables for key in table.foreign_keys
        )

    # --- the equivalence ---

    def assert_batches_agree(
        self,
        fresh: Callable[[], Engine],
        event_type: str,
        night: list[bytes],
        *,
        one_batch: list[int],
        poison: Poison,
        guarded: list[int],
        guarded_view: Callable[[State], State] = lambda found: found,
    ) -> State:
        """``night`` through the registered handlers in batches leaves the state it leaves one
        event per transaction: in one batch (``event_type``'s batch handler getting runs of
        ``one_batch``), in batches of three, and in one batch with ``poison`` (the guarded
        pass: runs of ``guarded``; its state and the expected one compared through
        ``guarded_view``). Every pass starts on a database of its own from ``fresh`` and keeps
        every ORM object alive. Returns the expected state, for the test to say what it holds
        (so that "equal" cannot mean "equally empty")."""
        one_by_one = fresh()
        self.apply(one_by_one, self.handlers, night, 1)
        expected = self.state(one_by_one)
        for batch in (len(night), 3):
            found, runs = self._counted_pass(
                fresh, event_type, lambda engine, handlers: self.apply(engine, handlers, night, batch)
            )
            assert found == expected, f"batches of {batch}: {_differences(found, expected)}"
            if batch == len(night):
                assert runs == one_batch, runs
        found, runs = self._counted_pass(
            fresh, event_type, lambda engine, handlers: self.apply_with_poison(engine, handlers, night, poison)
        )
        assert runs == guarded, runs  # the optimistic pass stopped at the poison, then runs of one
        assert guarded_view(found) == guarded_view(expected), (
            f"guarded retry pass: {_differences(guarded_view(found), guarded_view(expected))}"
        )
        return expected

    def _counted_pass(
        self, fresh: Callable[[], Engine], event_type: str, apply: Callable[[Engine, Handlers], None]
    ) -> tuple[State, list[int]]:
        """The state ``apply`` leaves on a fresh database with the registered handlers, objects
        kept alive, and the runs ``event_type``'s batch handler got."""
        runs: list[int] = []
        engine = fresh()
        with objects_kept_alive():
            apply(engine, counting(self.handlers, event_type, runs))
        return self.state(engine), runs


def _differences(found: State, expected: State) -> str:
    """The tables whose rows differ, each with its first differing row (found, expected)."""
    said = []
    for table in sorted(set(found) | set(expected)):
        mine, theirs = found.get(table, []), expected.get(table, [])
        if mine != theirs:
            pairs = [(a, b) for a, b in zip(mine, theirs) if a != b]
            first = pairs[0] if pairs else f"{len(mine)} rows, expected {len(theirs)}"
            said.append(f"{table}: {first}")
    return "; ".join(said)


# --- databases --------------------------------------------------------------------------------


class Databases:
    """Fresh, migrated databases of one service and one kind, made on demand
    (``databases()``) or copied from one already prepared (``databases.copy(engine)``: the
    same rows, the same outbox, for setups that are not replayable, such as jobs stamping
    their own ids)."""

    def __init__(self, service: str, kind: str, directory: Path):
        self.service = service
        self.kind = kind
        self.directory = directory
        self.made: list[Engine] = []

    def _url(self, name: str) -> str:
        return f"{PG_BASE}/{name}" if self.kind == "postgresql" else f"sqlite:///{self.directory / name}.db"

    def _engine(self, url: str) -> Engine:
        engine = make_engine(url)
        self.made.append(engine)
        return engine

    def __call__(self) -> Engine:
        url = self._url(f"bt_batch_{uuid.uuid4().hex[:12]}")
        upgrade(registry.definition(self.service), url)
        return self._engine(url)

    def copy(self, engine: Engine) -> Engine:
        name = f"bt_batch_{uuid.uuid4().hex[:12]}"
        engine.dispose()  # a template database must have no sessions
        if self.kind == "postgresql":
            self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{engine.url.database}"')
        else:
            source, target = sqlite3.connect(str(engine.url.database)), sqlite3.connect(self.directory / f"{name}.db")
            try:
                source.backup(target)
            finally:
                source.close()
                target.close()
        return self._engine(self._url(name))

    def drop(self) -> None:
        for engine in self.made:
            engine.dispose()
            if self.kind == "postgresql":
                self._admin(f'DROP DATABASE IF EXISTS "{engine.url.database}" WITH (FORCE)')

    @staticmethod
    def _admin(statement: str) -> None:
        admin = create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(statement))
        finally:
            admin.dispose()


def databases_fixture(service: str, kinds: tuple[str, ...] = ("postgresql", "sqlite")) -> Any:
    """The ``databases`` fixture of a test module (``databases = databases_fixture("accounts")``):
    fresh databases of ``service`` on demand, on PostgreSQL and on SQLite (or only the
    ``kinds`` named: a test of row locks has nothing to say on SQLite), dropped afterwards."""

    @pytest.fixture(params=list(kinds))
    def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
        made = Databases(service, request.param, tmp_path)
        yield made
        made.drop()

    return databases
