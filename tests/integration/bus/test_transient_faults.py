"""An outage never counts against a message; a poison message still ends in the dead letters.

A real events consumer (its own thread) drains a real Redis queue into a real PostgreSQL
database. The outage is real too: the applier's engine points at a port where nothing
listens, so every try fails with psycopg's own "connection refused", many more times than
``max_attempts``, and then at the service's database again. The poison is a handler that
raises a ValueError for one account.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text

from services.collections.registry import HANDLERS
from services.collections.models import BUS
from shared.bus.consumer import ConsumerConfig, EventConsumer
from shared.bus.handling import EventApplier
from shared.clock import SystemClock
from shared.rules import ProductRules
from tests.support.batch_equivalence import Databases, databases_fixture
from tests.support.outages import free_port
from tests.support.system import OutsideSystem, fresh_redis_db, poll_until, row_count

pytestmark = pytest.mark.integration

databases = databases_fixture("collections", kinds=("postgresql",))
MAX_ATTEMPTS = 3


@pytest.fixture
def bus(quiet_redis_db: int) -> Iterator[tuple[str, OutsideSystem]]:
    url = fresh_redis_db(quiet_redis_db)
    outside = OutsideSystem(url)
    yield url, outside
    outside.close()


def _grant(account: str) -> dict[str, Any]:
    return {
        "account_id": account,
        "customer_id": f"c-{account}",
        "identity_hash": "h" * 16,
        "credit_limit": "5000.00",
        "name": "张三",
        "phone": "13800005678",
        "opened_on": "2026-01-01",
    }


def _consumer(url: str, engine: Engine, handlers: dict[str, Any]) -> tuple[EventConsumer, threading.Thread]:
    applier = EventApplier(
        "collections", engine, BUS, handlers, ProductRules(), SystemClock(), max_attempts=MAX_ATTEMPTS
    )
    config = ConsumerConfig(retry_backoff_s=0.05, retry_backoff_max_s=0.2, outage_backoff_max_s=0.2)
    consumer = EventConsumer("collections", url, applier, config)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    return consumer, thread


def test_an_outage_longer_than_every_retry_dead_letters_nothing(databases: Databases, bus: Any) -> None:
    url, outside = bus
    engine = databases()
    away = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    tries: list[int] = []
    event.listen(away, "do_connect", lambda *_: tries.append(1))
    consumer, thread = _consumer(url, away, HANDLERS)
    try:
        for account in ("A", "B", "C"):
            outside.publish("credit.line.granted", _grant(account), account)
        poll_until(lambda: len(tries) > 4 * MAX_ATTEMPTS)  # far more failures than a message may have
        consumer.applier.engine = engine  # the database is back
        poll_until(lambda: row_count(engine, "customers") == 3 or row_count(engine, "dead_letters") > 0)
        time.sleep(0.5)  # a dead letter would come with the others' commit
    finally:
        consumer.stop()
        thread.join(timeout=10)
    with engine.connect() as conn:
        assert list(conn.execute(text("SELECT reason FROM dead_letters"))) == []
    assert row_count(engine, "customers") == 3
    assert row_count(engine, "inbox") == 3


def test_a_poison_message_is_dead_lettered_after_its_attempts(databases: Databases, bus: Any) -> None:
    url, outside = bus
    engine = databases()
    grant = HANDLERS["credit.line.granted"]
    calls: list[str] = []

    def poisoned(ctx: Any, payload: Any) -> None:
        if payload.account_id == "POISON":
            calls.append(payload.account_id)
            raise ValueError("this grant cannot be applied")
        grant.fn([(ctx, payload)])

    consumer, thread = _consumer(url, engine, {**HANDLERS, "credit.line.granted": poisoned})
    try:
        for account in ("A", "POISON", "B"):
            outside.publish("credit.line.granted", _grant(account), account)
        poll_until(lambda: row_count(engine, "dead_letters") == 1)
        poll_until(lambda: row_count(engine, "customers") == 2)
    finally:
        consumer.stop()
        thread.join(timeout=10)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT attempts, reason FROM dead_letters")).one()
    assert row.attempts == MAX_ATTEMPTS and "ValueError" in row.reason
    assert row_count(engine, "inbox") == 2
