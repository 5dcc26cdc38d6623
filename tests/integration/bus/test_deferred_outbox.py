"""The consumer's outbox keeps a transaction's events until the commit (real PostgreSQL).

What must hold: the events are written in the order they were emitted, across plain and
batch handlers; a handler that fails in the guarded pass takes its own events with it and
nobody else's; nothing is written when the transaction rolls back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from shared.bus.handling import BatchHandler, BusTables, Delivery, EventApplier, HandlerContext
from shared.bus.tables import add_bus_tables
from shared.clock import SystemClock
from shared.events import new_envelope
from shared.rules import ProductRules
from tests.support.system import scratch_database

pytestmark = pytest.mark.integration
metadata = MetaData()
_bus = add_bus_tables(metadata)
TABLES = BusTables(_bus["outbox"], _bus["inbox"], _bus["dead_letters"])


@pytest.fixture()
def engine() -> Iterator[Any]:
    with scratch_database("bt_outbox", metadata) as engine:
        yield engine


def _cured(account: str) -> Delivery:
    body = new_envelope(
        "account.cured",
        {"account_id": account, "business_date": "2026-03-20"},
        aggregate_id=account,
        producer="accounts",
        occurred_at=SystemClock().now(),
    )
    return Delivery(body=json.dumps(body).encode())


def _emit_one(ctx: HandlerContext, event: Any) -> None:
    if event.account_id.startswith("bad"):
        ctx.emit("collection.case.closed", {"account_id": event.account_id, "reason": "cured"}, event.account_id)
        raise RuntimeError("a handler that emitted, then failed")
    ctx.emit("collection.case.closed", {"account_id": event.account_id, "reason": "cured"}, event.account_id)


def _applier(engine: Any, batch: bool) -> EventApplier:
    handler: Any = BatchHandler(lambda items: [_emit_one(ctx, e) for ctx, e in items]) if batch else _emit_one
    return EventApplier(
        "test", engine, TABLES, {"account.cured": handler}, ProductRules(), SystemClock(), max_attempts=1
    )


def _outbox(engine: Any) -> list[str]:
    with engine.connect() as conn:
        return [row.aggregate_id for row in conn.execute(select(TABLES.outbox).order_by(TABLES.outbox.c.id))]


@pytest.mark.parametrize("batch", [False, True], ids=["handler", "batch-handler"])
def test_events_are_written_in_emission_order(engine: Any, batch: bool) -> None:
    accounts = [f"acc-{i}" for i in range(30)]
    outcome = _applier(engine, batch).apply_batch([_cured(a) for a in accounts])
    assert outcome.applied == 30 and not outcome.retry
    assert _outbox(engine) == accounts


@pytest.mark.parametrize("batch", [False, True], ids=["handler", "batch-handler"])
def test_a_failed_handler_takes_only_its_own_events_with_it(engine: Any, batch: bool) -> None:
    accounts = ["acc-1", "acc-2", "bad-3", "acc-4"]
    outcome = _applier(engine, batch).apply_batch([_cured(a) for a in accounts])
    assert outcome.dead_lettered == 1 and outcome.applied == 3
    assert _outbox(engine) == ["acc-1", "acc-2", "acc-4"]
