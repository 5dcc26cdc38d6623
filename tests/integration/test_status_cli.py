"""``baitiao status`` reads the real broker and the real PostgreSQL databases.

The accounts service is given a known backlog: three events queued of which one is held
unacked by a consumer, two job messages of which one is held by a worker, two outbox
rows unpublished for two minutes, an open and a replayed dead letter, a finished run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone

import pytest
from celery import Celery
from kombu import Connection, Producer
from sqlalchemy import create_engine, insert

from baitiao import registry
from shared.bus.consumer import events_connection
from shared.bus.topology import declare_topology, events_queue
from tests.support.cli import cli_env, run_cli
from tests.support.system import Databases, fresh_redis_db


@pytest.fixture(scope="module")
def pg() -> Iterator[Databases]:
    databases = Databases().create()
    try:
        yield databases
    finally:
        databases.drop()


@pytest.fixture(scope="module")
def backlog(pg: Databases, redis_db: int) -> Iterator[str]:
    url = fresh_redis_db(redis_db + 3)
    with Connection(url) as conn:
        declare_topology(conn)
        producer = Producer(conn.default_channel)
        for n in range(3):
            producer.publish({"n": n}, exchange="", routing_key="accounts.events", serializer="json")
    held_event = events_connection(url, 60, "accounts")  # a consumer that took one and has not acked
    assert events_queue("accounts")(held_event.default_channel).get(no_ack=False) is not None
    sender = Celery(broker=url)
    for day in ("2026-03-01", "2026-03-02"):
        sender.send_task("accounts.statements", kwargs={"business_date": day}, queue="accounts.jobs")
    held_job = Connection(url)  # Celery's own unacked hash, as a worker holding a job message
    assert held_job.SimpleQueue("accounts.jobs").get(block=False) is not None

    engine = create_engine(pg.url("accounts"))
    bus = registry.definition("accounts").bus
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(
            insert(bus.outbox),
            [
                {
                    "event_id": f"e{n}",
                    "type": "bill.issued",
                    "aggregate_id": "a",
                    "payload": "{}",
                    "occurred_at": now - timedelta(seconds=120 - n),
                    "published_at": now if n == 0 else None,
                }
                for n in range(3)
            ],
        )
        conn.execute(
            insert(bus.dead_letters),
            [
                {"queue": "accounts.events", "reason": "bad", "body": "{}", "created_at": now, "replayed_at": None},
                {"queue": "accounts.events", "reason": "bad", "body": "{}", "created_at": now, "replayed_at": now},
            ],
        )
        runs = registry.definition("accounts").metadata.tables["job_runs"]
        conn.execute(
            insert(runs),
            [
                {
                    "job": "statements",
                    "business_date": date(2026, 3, 1),
                    "status": "done",
                    "started_at": now,
                    "finished_at": now,
                    "owner": "t",
                },
                {
                    "job": "statements",
                    "business_date": date(2026, 2, 28),
                    "status": "done",
                    "started_at": now,
                    "finished_at": now,
                    "owner": "t",
                },
            ],
        )
    engine.dispose()
    try:
        yield url
    finally:
        held_event.release()
        held_job.release()


def test_status_reports_the_backlog_of_each_service(pg, backlog) -> None:
    result = run_cli("status", "--json", env=cli_env(BAITIAO_BROKER_URL=backlog, **pg.env()))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["broker"]["state"] == "up"
    accounts = next(s for s in report["services"] if s["service"] == "accounts")
    assert (accounts["events_queued"], accounts["events_unacked"]) == (2, 1)
    assert (accounts["jobs_queued"], accounts["jobs_unacked"]) == (1, 1)
    assert accounts["outbox_unpublished"] == 2
    assert 100 <= accounts["outbox_oldest_age_s"] < 600
    assert accounts["dead_letters_open"] == 1
    statements = next(j for j in accounts["jobs"] if j["job"] == "statements")
    assert (statements["last_business_date"], statements["status"]) == ("2026-03-01", "done")
    assert next(j for j in accounts["jobs"] if j["job"] == "daily-close")["status"] == "never run"
    collections = next(s for s in report["services"] if s["service"] == "collections")
    assert (
        collections["events_queued"],
        collections["events_unacked"],
        collections["outbox_unpublished"],
        collections["dead_letters_open"],
    ) == (0, 0, 0, 0)


def test_the_table_shows_the_same_figures(pg, backlog) -> None:
    result = run_cli("status", env=cli_env(BAITIAO_BROKER_URL=backlog, **pg.env()))
    assert result.returncode == 0, result.stderr
    accounts_line = next(line for line in result.stdout.splitlines() if line.startswith("│ accounts"))
    cells = [cell.strip() for cell in accounts_line.strip("│ ").split("│")]
    assert cells[:6] == ["accounts", "2 / 1", "1 / 1", "2", cells[4], "1"]
    assert cells[4].endswith(" s")
    assert "statements" in result.stdout and "2026-03-01" in result.stdout


def test_an_unreachable_broker_is_reported_and_fails(pg) -> None:
    result = run_cli("status", "--json", env=cli_env(BAITIAO_BROKER_URL="redis://127.0.0.1:1/0", **pg.env()))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["broker"]["state"] == "unreachable"
    assert next(s for s in report["services"] if s["service"] == "accounts")["dead_letters_open"] is not None


def test_status_on_the_embedded_default_with_its_broker_stopped(tmp_path) -> None:
    """SQLite files and no broker running: the databases are read, the broker is left off,
    and an outbox row written a minute ago (SQLite keeps no offset) is a minute old."""
    from shared.clock import SystemClock
    from tests.support.cli import free_port, listening

    port = free_port()
    env = cli_env(BAITIAO_DATA_DIR=str(tmp_path / "data"), BAITIAO_EMBEDDED_BROKER_PORT=str(port))
    assert run_cli("db", "upgrade", env=env).returncode == 0
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'restructuring.db'}")
    with engine.begin() as conn:
        conn.execute(
            insert(registry.definition("restructuring").bus.outbox).values(
                event_id="e1",
                type="plan.activated",
                aggregate_id="p",
                payload="{}",
                occurred_at=SystemClock().now() - timedelta(seconds=60),
            )
        )
    engine.dispose()
    result = run_cli("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["broker"]["state"] == "not running" and not listening(port)
    restructuring = next(s for s in report["services"] if s["service"] == "restructuring")
    assert restructuring["outbox_unpublished"] == 1
    assert 50 <= restructuring["outbox_oldest_age_s"] < 300
    assert restructuring["events_queued"] is None and restructuring["database"] == "ok"
