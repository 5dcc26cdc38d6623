"""Holding a batch handler to its per-event reference: the machinery the tests share.

The same wire bodies go into fresh accounts databases (``databases``: PostgreSQL and the
embedded default's SQLite), once one event per transaction through a reference set of
handlers, then through the registered ones in batches of several sizes and in a batch the
applier has to redo guarded (a poison event). ``state`` is what must then be the same:
every row the accounts service keeps and every event it wrote to its outbox, with its
causation and correlation ids (surrogate ids, which PostgreSQL's sequences may skip, and
the outbox's own event ids and publish stamps left out).

A test module imports the ``databases`` fixture from here.
"""
from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Table, create_engine, event, select, text
from sqlalchemy.orm import Session

from baitiao import registry
from services.accounts.models import (
    BUS,
    Account,
    Bill,
    BureauMark,
    DailyAccrual,
    LedgerEntry,
    PlanProjection,
    Purchase,
    Repayment,
    RestrictionHistory,
)
from shared.bus.handling import BatchHandler, BatchOutcome, Delivery, EventApplier
from shared.clock import FixedClock
from shared.db import make_engine
from shared.events import new_envelope
from shared.migrations import upgrade
from shared.rules import ProductRules
from tests.support.system import PG_BASE

Event = tuple[str, dict[str, Any]]
Handlers = dict[str, Any]


def bodies(events: list[Event], start: datetime) -> list[bytes]:
    """Wire bodies, each event a second after the one before (handlers run at their event's
    time); every other one carries a correlation id of its own."""
    return [json.dumps(new_envelope(event_type, payload, aggregate_id=payload["account_id"], producer="test",
                                    occurred_at=start + timedelta(seconds=k),
                                    correlation_id=f"checkout-{k}" if k % 2 else None)).encode()
            for k, (event_type, payload) in enumerate(events)]


def applier(engine: Engine, handlers: Handlers) -> EventApplier:
    return EventApplier("accounts", engine, BUS, handlers, ProductRules(), FixedClock(), max_attempts=1,
                        event_time=True)


def apply(engine: Engine, handlers: Handlers, wire: list[bytes], batch: int) -> None:
    """``wire`` in batches of ``batch`` (one transaction each); every event must be applied."""
    events = applier(engine, handlers)
    for k in range(0, len(wire), batch):
        deliveries = [Delivery(body=b) for b in wire[k:k + batch]]
        outcome = events.apply_batch(deliveries)
        assert not outcome.dead_lettered and not outcome.retry, [d.last_error for d in deliveries]


def _boom(ctx: Any, event: Any) -> None:
    raise RuntimeError("poison")


def apply_with_poison(engine: Engine, handlers: Handlers, wire: list[bytes], at: int, account_id: str,
                      occurred_at: datetime) -> BatchOutcome:
    """``wire`` in one batch with a failing ``plan.completed`` inserted before ``wire[at]``:
    the optimistic pass fails on it, the applier redoes the batch guarded (every event
    alone, in a savepoint) and dead-letters the poison."""
    poison = json.dumps(new_envelope("plan.completed", {"plan_id": "pl-poison", "account_id": account_id,
                                                        "completed_on": occurred_at.date().isoformat()},
                                     aggregate_id=account_id, producer="test", occurred_at=occurred_at)).encode()
    outcome = applier(engine, {**handlers, "plan.completed": _boom}).apply_batch(
        [Delivery(body=b) for b in wire[:at] + [poison] + wire[at:]])
    assert outcome.applied == len(wire) and outcome.dead_lettered == 1 and not outcome.retry
    return outcome


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


def counting(handlers: Handlers, event_type: str, runs: list[int]) -> Handlers:
    """``handlers`` with the batch handler of ``event_type`` noting the length of each run it gets."""
    batch = handlers[event_type]
    assert isinstance(batch, BatchHandler)

    def counted(items: list[Any]) -> None:
        runs.append(len(items))
        batch.fn(items)

    return {**handlers, event_type: BatchHandler(counted)}


def rows(engine: Engine, table: Table, *order: Any, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        found = conn.execute(select(table).order_by(*order)).mappings().all()
    return [{k: v for k, v in row.items() if k not in skip} for row in found]


def state(engine: Engine) -> dict[str, Any]:
    """Every row the accounts service keeps, and its outbox (payloads parsed)."""
    outbox = rows(engine, BUS.outbox, BUS.outbox.c.id, skip=("id", "event_id", "published_at"))
    for row in outbox:
        row["payload"] = json.loads(row["payload"])
    return {
        "accounts": rows(engine, Account.__table__, Account.pk),
        "purchases": rows(engine, Purchase.__table__, Purchase.purchase_id),
        "bills": rows(engine, Bill.__table__, Bill.pk),
        "daily_accruals": rows(engine, DailyAccrual.__table__, DailyAccrual.bill_pk, DailyAccrual.business_date),
        "repayments": rows(engine, Repayment.__table__, Repayment.payment_id),
        "restriction_history": rows(engine, RestrictionHistory.__table__, RestrictionHistory.id, skip=("id",)),
        "bureau_marks": rows(engine, BureauMark.__table__, BureauMark.id, skip=("id",)),
        "plans": rows(engine, PlanProjection.__table__, PlanProjection.plan_id),
        "ledger": rows(engine, LedgerEntry.__table__, LedgerEntry.id, skip=("id",)),
        "outbox": outbox,
    }


class Databases:
    """Fresh, migrated accounts databases of one kind, made on demand (``databases()``) or
    copied from one already prepared (``databases.copy(engine)``: the same rows, the same
    outbox, for setups that are not replayable, such as jobs stamping their own ids)."""

    def __init__(self, kind: str, directory: Path):
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
        upgrade(registry.definition("accounts"), url)
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


@pytest.fixture(params=["postgresql", "sqlite"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    """Fresh accounts databases on demand, dropped afterwards."""
    made = Databases(request.param, tmp_path)
    yield made
    made.drop()


def prepared(fresh: Callable[[], Engine], handlers: Handlers, setup: list[bytes],
             then: Callable[[Engine], None] | None = None) -> Engine:
    """A fresh database with ``setup`` applied one event per transaction, then ``then`` done."""
    engine = fresh()
    apply(engine, handlers, setup, 1)
    if then is not None:
        then(engine)
    return engine
