"""Outages of the system's dependencies under load: the workers wait them out, nothing is
lost, nothing is done twice, nothing is dead-lettered, no worker exits.

Each test runs the three real worker processes against servers of its own
(``tests/support/outages.py``), never the machine's, and takes those servers away for
real while the outside world keeps sending ``purchase.requested`` at 5 a second:

- PostgreSQL stopped (``pg_ctl stop -m fast``) for two minutes, then started again;
- Redis SIGKILLed and started again on its AOF (``appendfsync everysec``);
- PostgreSQL restarted while the daily close runs over a few hundred accounts: the
  close completes and its results equal an undisturbed close's.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from services.accounts.models import Account, Purchase
from tests.support.outages import PrivatePostgres, PrivateRedis, PurchaseStream
from tests.support.system import SERVICES, Databases, Workers

pytestmark = pytest.mark.e2e

OUTAGE_S = 120.0


@dataclass
class Stack:
    postgres: PrivatePostgres | None
    redis: PrivateRedis
    databases: Databases
    workers: Workers
    stream: PurchaseStream
    env: dict[str, str]


def _stack(tmp: Path, private_postgres: bool, appendonly: bool) -> Iterator[Stack]:
    postgres = PrivatePostgres() if private_postgres else None
    broker = PrivateRedis(appendonly=appendonly)
    try:
        if postgres is not None:
            postgres.start()
        broker.start()
        databases = Databases(base=postgres.base) if postgres else Databases()
        databases.create()
        env = {"BAITIAO_BROKER_URL": broker.url(0), "BAITIAO_VISIBILITY_TIMEOUT": "15",
               "BAITIAO_DATA_DIR": str(tmp / "data"), "BAITIAO_LOG_LEVEL": "WARNING", **databases.env()}
        stream = PurchaseStream(broker.url(0), [])
        stream.connect()
        workers = Workers(env, tmp)
        workers.start_all()
        stack = Stack(postgres, broker, databases, workers, stream, env)
        try:
            yield stack
        finally:
            workers.stop_all()
            stream.close()
            if postgres is None:
                databases.drop()
    finally:
        broker.destroy()
        if postgres is not None:
            postgres.destroy()


def _rows(stack: Stack, service: str, sql: str) -> list[Any]:
    engine = create_engine(stack.databases.url(service))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)))
    finally:
        engine.dispose()


def _dead_letters(stack: Stack) -> dict[str, list[str]]:
    return {s: [f"{r.type}: {r.reason[:200]}" for r in _rows(stack, s, "SELECT type, reason FROM dead_letters")]
            for s in SERVICES}


def _assert_every_purchase_answered_once(stack: Stack) -> None:
    stream = stack.stream
    replies = stream.replies()
    unanswered = [p for p in stream.sent if p not in replies]
    assert not unanswered, f"{len(unanswered)} of {len(stream.sent)} purchases never answered"
    doubled = {p: ids for p, ids in replies.items() if len(ids) != 1}
    assert not doubled, f"purchases answered more than once: {list(doubled.items())[:5]}"
    # The database agrees: one purchase row, and one reply in the outbox, per purchase.
    engine = create_engine(stack.databases.url("accounts"))
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Purchase)) == len(stream.sent)
        outbox_replies = conn.execute(text(
            "SELECT count(*), count(DISTINCT payload::json->>'purchase_id') FROM outbox "
            "WHERE type IN ('purchase.approved', 'purchase.declined')")).one()
        assert tuple(outbox_replies) == (len(stream.sent), len(stream.sent))
        # Effects once: every account's unpaid principal is the sum of its approved purchases.
        owed = {row.account_id: row.unpaid_principal_fen for row in conn.execute(
            select(Account.account_id, Account.unpaid_principal_fen))}
    engine.dispose()
    approved = _approved_fen_by_account(stream)
    assert {a: owed[a] for a in stream.accounts} == {a: approved.get(a, 0) for a in stream.accounts}


def _approved_fen_by_account(stream: PurchaseStream) -> dict[str, int]:
    totals: dict[str, int] = {}
    counted: set[str] = set()
    for event in stream.seen:
        if event.get("type") == "purchase.approved" and event["event_id"] not in counted:
            counted.add(event["event_id"])
            account = stream.sent[event["payload"]["purchase_id"]]["payload"]["account_id"]
            amount = stream.sent[event["payload"]["purchase_id"]]["payload"]["amount"]
            totals[account] = totals.get(account, 0) + int(amount.replace(".", ""))
    return totals


def _assert_workers_alive(stack: Stack) -> None:
    dead = [s for s in SERVICES if not stack.workers.alive(s)]
    assert not dead, f"workers exited: {dead}"


@pytest.fixture
def private_postgres_stack(tmp_path: Path) -> Iterator[Stack]:
    yield from _stack(tmp_path, private_postgres=True, appendonly=False)


def test_a_two_minute_postgres_outage_under_load_loses_nothing(private_postgres_stack: Stack) -> None:
    stack = private_postgres_stack
    stream, postgres = stack.stream, stack.postgres
    assert postgres is not None
    stream.open_accounts(20)
    stream.run(15)
    postgres.stop("fast")
    stopped_at = time.monotonic()
    assert not postgres.accepts()
    stream.run(OUTAGE_S)
    postgres.start()
    started_at = time.monotonic()
    stream.run(15)
    stream.wait_for_every_reply(timeout=180)

    during = [p for p, at in stream.sent_at.items() if stopped_at < at < started_at]
    assert len(during) >= 0.9 * stream.rate * OUTAGE_S  # the stream went on through the outage
    early = [p for p in during if stream.first_reply_at.get(p, float("inf")) < started_at]
    assert not early, "answered while PostgreSQL was down: the outage was not real"
    _assert_workers_alive(stack)
    assert _dead_letters(stack) == {s: [] for s in SERVICES}
    _assert_every_purchase_answered_once(stack)
    recovered = max(stream.first_reply_at[p] for p in during) - started_at
    print(f"\npostgres outage {OUTAGE_S:.0f}s: {len(stream.sent)} purchases, {len(during)} during it; "
          f"the last of those answered {recovered:.1f}s after PostgreSQL was back")
