"""Two and three workers of each service on the same queues give the results of one.

The same portfolio goes twice through accounts and collections, each time on fresh
PostgreSQL databases and its own Redis database: once with one worker per service and
unpartitioned jobs, then with two workers per service and ``BAITIAO_JOB_PARTITIONS=2``
(collections-daily then runs as two chains, which the two workers share), and with
three workers and three partitions. Events go
through the bus, the statements, the daily closes (two of them, the second catching up
a missed date) and collections-daily through ``baitiao jobs run``. Everything the two
services keep (bills, accruals, ledger, accounts, cases, contacts, tasks, stage history,
the events they emitted) must be equal, compared by business keys: the ordering guards,
leases, case locks and partitions leave nothing done twice or left out.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, text

from tests.e2e.test_killed_job_worker import start_worker, stop
from tests.support.customers import credit_line, purchase
from tests.support.system import Databases, OutsideSystem, fresh_redis_db, run_cli

pytestmark = pytest.mark.e2e

ACCOUNTS = 30
SERVICES = ("accounts", "collections")


def _publish_portfolio(out: OutsideSystem) -> None:
    for i in range(ACCOUNTS):
        account = f"acc-scale-{i:03d}"
        out.publish("credit.line.granted", credit_line(account, "5000.00", identity=f"identity-{i % 25}"), account)
    for i in range(ACCOUNTS):
        account = f"acc-scale-{i:03d}"
        out.publish(
            "purchase.requested",
            purchase(account, f"{100 + 37 * i}.00", "2026-02-14T15:00:00+08:00", purchase_id=f"pur-scale-{i:03d}-a"),
            account,
        )
        if i % 3 == 0:
            out.publish(
                "purchase.requested",
                purchase(account, f"{50 + i}.10", "2026-02-20T10:00:00+08:00", purchase_id=f"pur-scale-{i:03d}-b"),
                account,
            )


def _quiet(broker_url: str, dbs: Databases, timeout: float = 180) -> None:
    """Wait until every event was published and applied: outboxes sent, queues and unacked hashes empty."""
    client = redis.Redis.from_url(broker_url)
    engines = {s: create_engine(dbs.url(s)) for s in SERVICES}
    calm_since: float | None = None
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, "the services never went quiet"
            busy = any(client.llen(f"{s}.events") or client.hlen(f"baitiao.events.{s}.unacked") for s in SERVICES)
            for engine in engines.values():
                with engine.connect() as conn:
                    busy = busy or bool(conn.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")))
            if busy:
                calm_since = None
            elif calm_since is None:
                calm_since = time.monotonic()
            elif time.monotonic() - calm_since > 2:
                return
            time.sleep(0.3)
    finally:
        for engine in engines.values():
            engine.dispose()


VARIES = ("duration_ms", "slices", "partitions")  # how the work was cut and timed, not what it did


def _job(env: dict[str, str], name: str, day: str) -> dict[str, Any]:
    done = run_cli(["jobs", "run", name, "--date", day, "--timeout", "300"], env, timeout=330)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _stable(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in summary.items() if key not in VARIES}


def _rows(url: str, queries: dict[str, str]) -> dict[str, Any]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = {name: Counter(tuple(row) for row in conn.execute(text(sql))) for name, sql in queries.items()}
    engine.dispose()
    return found


ACCOUNTS_STATE = {
    "accounts": "SELECT account_id, status, level, linked_level, max_dpd, credit_limit_fen, limit_cut, "
    "unpaid_principal_fen FROM accounts",
    "bills": "SELECT a.account_id, b.statement_date, b.due_date, b.principal_fen, b.dpd, b.unpaid_principal_fen, "
    "b.unpaid_penalty_fen, b.unpaid_late_fee_fen, b.penalty_charged_fen, b.late_fee_charged_fen, "
    "b.overdue_since, b.bureau_marked_on, b.last_closed_on FROM bills b JOIN accounts a ON a.pk = b.account_pk",
    "accruals": "SELECT a.account_id, b.statement_date, d.business_date, d.basis_fen, d.penalty_fen, d.late_fee_fen "
    "FROM daily_accruals d JOIN bills b ON b.pk = d.bill_pk JOIN accounts a ON a.pk = b.account_pk",
    "ledger": "SELECT a.account_id, l.business_date, l.ledger_account, l.debit_fen, l.credit_fen, l.kind "
    "FROM ledger_entries l JOIN accounts a ON a.pk = l.account_pk",
    "events": "SELECT type, aggregate_id FROM outbox",
    "runs": "SELECT job, business_date, status FROM job_runs",
}
COLLECTIONS_STATE = {
    "cases": "SELECT account_id, status, stage, max_dpd, overdue_principal_fen, total_overdue_fen, "
    "delinquency_as_of FROM cases",
    "contacts": "SELECT account_id, business_date, channel, kind, template, stage, dpd, status, planned_for "
    "FROM contact_attempts",
    "tasks": "SELECT account_id, kind, stage, dpd, amount_fen, created_on, due_by, status FROM collector_tasks",
    "stages": "SELECT account_id, business_date, stage FROM case_stage_history",
    "events": "SELECT type, aggregate_id FROM outbox",
}


def _run(workers_per_service: int, partitions: int, redis_db: int, log_dir: Path) -> dict[str, Any]:
    log_dir.mkdir(parents=True, exist_ok=True)
    dbs = Databases().create(SERVICES)
    broker_url = fresh_redis_db(redis_db)
    env = {
        "BAITIAO_BROKER_URL": broker_url,
        "BAITIAO_VISIBILITY_TIMEOUT": "15",
        "BAITIAO_LOG_LEVEL": "WARNING",
        "BAITIAO_DATA_DIR": str(log_dir / "data"),
        "BAITIAO_JOB_PARTITIONS": str(partitions),
        **dbs.env(),
    }
    out = OutsideSystem(broker_url)
    procs = [
        start_worker(service, env, log_dir / f"{service}-{n}.log")
        for service in SERVICES
        for n in range(workers_per_service)
    ]
    try:
        _publish_portfolio(out)
        _quiet(broker_url, dbs)
        summaries = {"statements": _stable(_job(env, "statements", "2026-03-01"))}
        _quiet(broker_url, dbs)
        summaries["close-12"] = _stable(_job(env, "daily-close", "2026-03-12"))
        summaries["close-14"] = _stable(_job(env, "daily-close", "2026-03-14"))  # 03-13 and 03-14
        _quiet(broker_url, dbs)
        daily = _job(env, "collections-daily", "2026-03-14")
        assert daily.get("partitions", 1) == partitions, daily
        summaries["collections-daily"] = _stable(daily)
        _quiet(broker_url, dbs)
        return {
            "summaries": summaries,
            "accounts": _rows(dbs.url("accounts"), ACCOUNTS_STATE),
            "collections": _rows(dbs.url("collections"), COLLECTIONS_STATE),
        }
    finally:
        stop(*procs)
        out.close()
        dbs.drop()


def test_two_and_three_workers_per_service_give_the_results_of_one(redis_db, tmp_path) -> None:
    one = _run(1, 1, redis_db + 8, tmp_path / "one")
    two = _run(2, 2, redis_db + 9, tmp_path / "two")
    three = _run(3, 3, redis_db + 10, tmp_path / "three")
    # the runs did something: every account billed and delinquent, cases judged, contacts planned
    assert len(one["accounts"]["bills"]) == ACCOUNTS  # one bill each (statement 03-01)
    assert sum(one["collections"]["cases"].values()) == ACCOUNTS
    assert one["summaries"]["collections-daily"]["cases"] == ACCOUNTS
    assert sum(one["collections"]["contacts"].values()) > 0
    for part in ("summaries", "accounts", "collections"):
        assert two[part] == one[part], part
        assert three[part] == one[part], part
