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

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from services.accounts.models import Account, Purchase
from shared.clock import SystemClock
from shared.db import dispose_engines
from shared.jobs import JobContext
from shared.settings import Settings
from tests.support.customers import purchase
from tests.support.outages import PrivatePostgres, PrivateRedis, PurchaseStream
from tests.support.system import ROOT, SERVICES, Databases, Workers, run_cli

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
        env = {
            "BAITIAO_BROKER_URL": broker.url(0),
            "BAITIAO_VISIBILITY_TIMEOUT": "15",
            "BAITIAO_DATA_DIR": str(tmp / "data"),
            "BAITIAO_LOG_LEVEL": "WARNING",
            **databases.env(),
        }
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
    return {
        s: [f"{r.type}: {r.reason[:200]}" for r in _rows(stack, s, "SELECT type, reason FROM dead_letters")]
        for s in SERVICES
    }


def _assert_every_purchase_answered_once(stack: Stack) -> None:
    stream = stack.stream
    replies = stream.replies()
    unanswered = [p for p in stream.sent if p not in replies]
    assert not unanswered, f"{len(unanswered)} of {len(stream.sent)} purchases never answered"
    doubled = {p: ids for p, ids in replies.items() if len(ids) != 1}
    assert not doubled, f"purchases answered more than once: {list(doubled.items())[:5]}"
    # The database agrees: a purchase row per approval, and one reply in the outbox, per purchase.
    approvals = {e["payload"]["purchase_id"] for e in stream.seen if e.get("type") == "purchase.approved"}
    engine = create_engine(stack.databases.url("accounts"))
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Purchase)) == len(approvals)
        outbox_replies = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT payload::json->>'purchase_id') FROM outbox "
                "WHERE type IN ('purchase.approved', 'purchase.declined')"
            )
        ).one()
        assert tuple(outbox_replies) == (len(stream.sent), len(stream.sent))
        # Effects once: every account's unpaid principal is the sum of its approved purchases.
        owed = {
            row.account_id: row.unpaid_principal_fen
            for row in conn.execute(select(Account.account_id, Account.unpaid_principal_fen))
        }
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
    print(
        f"\npostgres outage {OUTAGE_S:.0f}s: {len(stream.sent)} purchases, {len(during)} during it; "
        f"the last of those answered {recovered:.1f}s after PostgreSQL was back"
    )


# -- Redis SIGKILLed and restarted on its AOF ----------------------------------------------


@pytest.fixture
def aof_redis_stack(tmp_path: Path) -> Iterator[Stack]:
    yield from _stack(tmp_path, private_postgres=False, appendonly=True)


def _published_event_ids(stack: Stack) -> set[str]:
    return {
        row.event_id
        for service in SERVICES
        for row in _rows(stack, service, "SELECT event_id FROM outbox WHERE published_at IS NOT NULL")
    }


def test_a_redis_killed_and_restarted_on_its_aof_loses_and_doubles_nothing(aof_redis_stack: Stack) -> None:
    stack = aof_redis_stack
    stream, broker = stack.stream, stack.redis
    stream.open_accounts(20, limit="300.00")
    stream.amount = "37.00"  # an account's limit takes 8 purchases: the stream's 11 or so each, some are declined
    stream.run(20)
    published_before_kill = _published_event_ids(stack)
    moments: dict[str, float] = {}

    def crash() -> None:
        broker.kill()
        moments["killed"] = time.monotonic()
        time.sleep(5)
        broker.start()
        moments["restarted"] = time.monotonic()

    crashing = threading.Thread(target=crash)
    crashing.start()
    stream.run(30)  # the stream goes on: its publishes fail, and are sent again, while Redis is away
    crashing.join()
    killed_at, restarted_at = moments["killed"], moments["restarted"]
    stream.connect()  # the observer attaches again even if no publish of ours failed
    stream.wait_for_every_reply(timeout=180)

    _assert_workers_alive(stack)
    assert _dead_letters(stack) == {s: [] for s in SERVICES}
    _assert_every_purchase_answered_once(stack)
    # What the relay had stamped published before the kill was on Redis after the restart:
    # the observer, bound to every key since the start, has seen every such event.
    observed = {e["event_id"] for e in stream.seen}
    assert published_before_kill and published_before_kill <= observed
    assert _published_event_ids(stack) <= observed
    # Some purchases were declined (limit used up): the limit was taken once per approval.
    replies = {e["type"] for e in stream.seen if e.get("type", "").startswith("purchase.")}
    assert {"purchase.approved", "purchase.declined"} <= replies
    sent_before = [p for p, at in stream.sent_at.items() if at < killed_at]
    recovered = max(stream.first_reply_at[p] for p in sent_before) - restarted_at
    after = [stream.first_reply_at[p] - stream.sent_at[p] for p, at in stream.sent_at.items() if at > restarted_at]
    assert stream.publish_retries > 0  # the outside producer met the outage too
    print(
        f"\nredis SIGKILL, 5 s down: {len(stream.sent)} purchases, {stream.publish_retries} publishes retried; "
        f"everything sent before the kill answered {max(recovered, 0):.1f}s after the restart; "
        f"those sent after it answered within {max(after, default=float('nan')):.1f}s"
    )


# -- PostgreSQL restarted during the daily close ---------------------------------------------

CLOSE_ACCOUNTS = 300
FIRST_CLOSE = date(2026, 3, 11)
LAST_CLOSE = date(2026, 5, 10)  # sixty missed dates closed by one run


def _close_results(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                "accruals": [
                    tuple(r)
                    for r in conn.execute(
                        text(
                            "SELECT bill_pk, business_date, account_pk, basis_fen, penalty_fen, late_fee_fen "
                            "FROM daily_accruals ORDER BY bill_pk, business_date"
                        )
                    )
                ],
                "bills": [
                    tuple(r)
                    for r in conn.execute(
                        text(
                            "SELECT pk, unpaid_penalty_fen, unpaid_late_fee_fen, penalty_charged_fen, late_fee_charged_fen, "
                            "dpd, overdue_since, bureau_marked_on FROM bills ORDER BY pk"
                        )
                    )
                ],
                "ledger": [
                    tuple(r)
                    for r in conn.execute(
                        text(
                            "SELECT kind, ledger_account, business_date, sum(debit_fen), sum(credit_fen), count(*) "
                            "FROM ledger_entries GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
                        )
                    )
                ],
                "closed": [
                    tuple(r)
                    for r in conn.execute(
                        text("SELECT business_date, status FROM job_runs WHERE job = 'daily-close' ORDER BY 1")
                    )
                ],
            }
    finally:
        engine.dispose()


def _job(stack: Stack, name: str, day: date) -> dict[str, Any]:
    done = run_cli(["jobs", "run", name, "--date", day.isoformat()], stack.env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _snapshot(stack: Stack, name: str) -> str:
    """A copy of the accounts database as it is now (the accounts worker is stopped for it)."""
    assert stack.postgres is not None
    stack.workers.kill("accounts")
    dispose_engines()
    source = f"{stack.databases.prefix}_accounts"
    admin = create_engine(f"{stack.postgres.base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"), {"d": source})
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
    admin.dispose()
    stack.workers.start("accounts")
    return f"{stack.postgres.base}/{name}"


def _close_undisturbed(url: str, day: date) -> None:
    """The same close, run in this process on the copy, with nothing in its way."""
    from baitiao import registry
    from services.accounts.daily_close import daily_close
    from shared.bus.outbox import Outbox

    engine = create_engine(url)
    state: dict[str, Any] = {}
    while True:
        ctx = JobContext(
            service="accounts",
            job="daily-close",
            business_date=day,
            at=None,
            engine=engine,
            outbox=Outbox(registry.definition("accounts").bus.outbox),
            rules=Settings().rules(),
            clock=SystemClock(),
            settings=Settings(),
            state=state,
        )
        result = daily_close(ctx)
        if not result.more:
            break
        state = result.state
    engine.dispose()


def _closed_dates(stack: Stack) -> int:
    try:
        rows = _rows(stack, "accounts", "SELECT count(*) FROM job_runs WHERE job = 'daily-close' AND status = 'done'")
        return int(rows[0][0])
    except Exception:  # noqa: BLE001 - the server is stopping
        return -1


def test_postgres_restarted_during_the_daily_close_changes_nothing_in_its_results(
    private_postgres_stack: Stack,
) -> None:
    stack = private_postgres_stack
    stream, postgres = stack.stream, stack.postgres
    assert postgres is not None and stream.outside is not None
    stream.open_accounts(CLOSE_ACCOUNTS, limit="5000.00")
    for k, account in enumerate(stream.accounts):
        stream.outside.publish(
            "purchase.requested", purchase(account, f"{100 + k}.00", "2026-02-14T12:00:00+08:00"), account
        )
    stream.outside.wait_for(
        "purchase.approved", lambda p: p["account_id"] in stream.accounts, timeout=120, count=CLOSE_ACCOUNTS
    )
    _job(stack, "statements", date(2026, 3, 1))
    _job(stack, "daily-close", FIRST_CLOSE)
    stream.observe(5)  # the close's consequences settle (collections, restructuring)
    copy_url = _snapshot(stack, f"{stack.databases.prefix}_undisturbed")

    close = subprocess.Popen(
        [sys.executable, "-m", "baitiao.cli", "jobs", "run", "daily-close", "--date", LAST_CLOSE.isoformat()],
        env={**os.environ, **stack.env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _closed_dates(stack) < 5:  # FIRST_CLOSE and a few of the sixty: the close is under way
        if close.poll() is not None:
            raise AssertionError(f"the close ended before the restart: {close.communicate()}")
        assert time.monotonic() < deadline, "the close never got under way"
        time.sleep(0.02)
    closed_before_stop = _closed_dates(stack)
    postgres.stop("fast")
    stopped_at = time.monotonic()
    time.sleep(10)
    postgres.start()
    restarted_at = time.monotonic()
    out, err = close.communicate(timeout=300)
    finished_at = time.monotonic()
    assert close.returncode == 0, out + err
    summary = json.loads(out)
    assert summary["status"] == "closed" and summary["business_date"] == LAST_CLOSE.isoformat()

    _close_undisturbed(copy_url, LAST_CLOSE)
    disturbed, undisturbed = _close_results(stack.databases.url("accounts")), _close_results(copy_url)
    assert len(disturbed["closed"]) == 1 + (LAST_CLOSE - FIRST_CLOSE).days > closed_before_stop
    assert "job_slice_retried" in (stack.workers.log_dir / "accounts.log").read_text(), "the close never met the outage"
    assert disturbed["accruals"] and disturbed == undisturbed
    _assert_workers_alive(stack)
    assert _dead_letters(stack) == {s: [] for s in SERVICES}
    print(
        f"\npostgres restart during the daily close (down {restarted_at - stopped_at:.1f}s): the close finished "
        f"{finished_at - restarted_at:.1f}s after PostgreSQL was back"
    )
