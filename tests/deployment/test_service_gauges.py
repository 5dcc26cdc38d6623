"""The scrape-time gauges on real Redis and PostgreSQL: what they report, and what a scrape costs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime, timezone
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, event, insert

from services.restructuring.models import BUS, Base, JobRun
from shared.bus.kombu_redis import unacked_keys
from shared.service_gauges import ServiceGauges
from tests.support.system import redis_url, scratch_database

pytestmark = [pytest.mark.integration, pytest.mark.observability]
NOW = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)


@pytest.fixture()
def engine() -> Iterator[Engine]:
    with scratch_database("bt_gauges", Base.metadata) as created:
        yield created


@pytest.fixture()
def broker(quiet_redis_db: int) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url(quiet_redis_db))
    client.flushdb()
    yield client
    client.flushdb()


def scrape(gauges: ServiceGauges) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    registry = CollectorRegistry()
    registry.register(gauges)
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def outbox_row(n: int, published: bool = False) -> dict[str, object]:
    return {
        "event_id": f"00000000-0000-0000-0000-{n:012d}",
        "type": "plan.activated",
        "aggregate_id": f"a{n}",
        "payload": "{}",
        "occurred_at": NOW,
        "published_at": NOW if published else None,
    }


def test_the_gauges_read_queues_unacked_outbox_dead_letters_and_job_runs(engine: Engine, broker: redis.Redis) -> None:
    broker.rpush("restructuring.events", b"a", b"b", b"c")
    broker.rpush("restructuring.jobs", b"j")
    broker.rpush("restructuring.jobs\x06\x163", b"j3")  # kombu's key of priority 3
    broker.hset(unacked_keys("restructuring")["unacked_key"], mapping={"t1": "x", "t2": "y"})
    broker.rpush("accounts.events", b"not ours")
    with engine.begin() as conn:
        conn.execute(insert(BUS.outbox), [outbox_row(1, published=True), outbox_row(2), outbox_row(3)])
        conn.execute(
            insert(BUS.dead_letters),
            [
                {"queue": "restructuring.events", "reason": "r", "body": "{}", "created_at": NOW, "replayed_at": None},
                {"queue": "restructuring.events", "reason": "r", "body": "{}", "created_at": NOW, "replayed_at": NOW},
            ],
        )
        conn.execute(
            insert(JobRun.__table__),
            [
                {
                    "job": "plan-monitor",
                    "business_date": date(2026, 3, 1),
                    "status": "done",
                    "started_at": NOW,
                    "finished_at": NOW,
                },
                {
                    "job": "plan-monitor",
                    "business_date": date(2026, 3, 2),
                    "status": "running",
                    "started_at": NOW,
                    "finished_at": None,
                },
            ],
        )
    gauges = ServiceGauges("restructuring", engine, BUS.outbox, BUS.dead_letters, JobRun.__table__, broker)

    found = scrape(gauges)
    service = (("service", "restructuring"),)
    assert found["baitiao_queue_depth"] == {
        (("queue", "restructuring.events"), *service): 3,
        (("queue", "restructuring.jobs"), *service): 2,
    }
    assert found["baitiao_events_unacked"] == {service: 2}
    assert found["baitiao_outbox_unpublished"] == {service: 2}
    assert found["baitiao_dead_letters_pending"] == {service: 1}
    plan_monitor = (("job_name", "plan-monitor"), *service)
    assert found["baitiao_job_last_success_business_date_seconds"] == {plan_monitor: 1772294400}  # 03-01 00:00 +08
    assert found["baitiao_job_last_success_timestamp_seconds"] == {plan_monitor: NOW.timestamp()}
    assert found["baitiao_service_gauges_up"] == {
        (("service", "restructuring"), ("source", s)): 1 for s in ("broker", "database")
    }


def test_the_outbox_lag_is_how_long_the_same_row_has_been_the_oldest(engine: Engine, broker: redis.Redis) -> None:
    gauges = ServiceGauges("restructuring", engine, BUS.outbox, BUS.dead_letters, None, broker, refresh_s=0)
    lag = lambda: scrape(gauges)["baitiao_outbox_lag_seconds"][(("service", "restructuring"),)]  # noqa: E731
    assert lag() == 0  # nothing waits
    with engine.begin() as conn:
        conn.execute(insert(BUS.outbox), [outbox_row(1), outbox_row(2)])
    assert lag() == 0  # first seen now
    time.sleep(1.2)
    assert 1.0 <= lag() < 5  # still the same head: it waits
    with engine.begin() as conn:
        conn.execute(BUS.outbox.update().where(BUS.outbox.c.id == 1).values(published_at=NOW))
    assert lag() < 0.5  # the relay moved on: the new head was just seen


def test_a_scrape_costs_one_statement_and_one_round_trip_and_repeats_are_cached(
    engine: Engine, broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    round_trips: list[object] = []
    original = broker.pipeline

    def counted_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = original(*args, **kwargs)
        execute = pipe.execute

        def counted_execute(*a: Any, **k: Any) -> Any:
            round_trips.append(1)
            return execute(*a, **k)

        monkeypatch.setattr(pipe, "execute", counted_execute)
        return pipe

    monkeypatch.setattr(broker, "pipeline", counted_pipeline)
    gauges = ServiceGauges(
        "restructuring", engine, BUS.outbox, BUS.dead_letters, JobRun.__table__, broker, refresh_s=60
    )
    scrape(gauges)
    assert len(statements) == 1 and len(round_trips) == 1, statements
    for _ in range(5):
        scrape(gauges)
    assert len(statements) == 1 and len(round_trips) == 1  # within refresh_s: the last figures


def test_an_unreachable_broker_or_database_leaves_its_gauges_out_and_says_so(engine: Engine) -> None:
    nowhere = redis.Redis(host="127.0.0.1", port=9, socket_timeout=0.5, socket_connect_timeout=0.5)
    gauges = ServiceGauges("restructuring", engine, BUS.outbox, BUS.dead_letters, None, nowhere)
    found = scrape(gauges)
    assert found["baitiao_service_gauges_up"][(("service", "restructuring"), ("source", "broker"))] == 0
    assert found["baitiao_service_gauges_up"][(("service", "restructuring"), ("source", "database"))] == 1
    assert "baitiao_queue_depth" not in found and found["baitiao_outbox_unpublished"]
