"""A job request that nobody took in time never runs later; a chain once started always ends.

A real Celery worker (in this process) on a real Redis runs a job of four slices through
shared/jobs.py's own wrapper, each slice queued by the one before it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from sqlalchemy import MetaData

from shared.bus.handling import BusTables
from shared.bus.tables import add_bus_tables
from shared.celery_app import base_celery_config
from shared.job_runner import run_job_and_wait, workers_serving
from shared.jobs import JobContext, JobResult, register_job
from shared.service import JobSpec, ServiceDefinition
from shared.settings import Settings
from tests.support.system import fresh_redis_db

SLICES = 4
SLICE_S = 0.8
TASK = "tests.four_slices"


class FourSlices:
    """A job of four slices, each ``SLICE_S`` long; remembers what ran."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, ctx: JobContext) -> JobResult:
        number = int(ctx.state.get("slice", 1))
        time.sleep(SLICE_S)
        with self.lock:
            self.ran.append((ctx.business_date.isoformat(), number))
        return JobResult({"slice": number}, more=number < SLICES, state={"slice": number + 1})


@pytest.fixture()
def job(redis_db: int, tmp_path: Path) -> Iterator[tuple[Celery, FourSlices, str]]:
    url = fresh_redis_db(redis_db + 4)
    app = Celery("tests.jobs")
    app.conf.update(base_celery_config(url))
    app.conf.task_default_queue = "accounts.jobs"
    app.baitiao_settings = Settings(
        broker_url=url,
        data_dir=tmp_path,
        accounts_db_url=f"sqlite:///{tmp_path / 'accounts.db'}",
    )
    tables = add_bus_tables(MetaData())
    definition = ServiceDefinition(
        name="accounts",
        metadata=MetaData(),
        bus=BusTables(tables["outbox"], tables["inbox"], tables["dead_letters"]),
        handlers={},
        migrations_dir=tmp_path,
    )
    fn = FourSlices()
    register_job(app, definition, JobSpec("four-slices", TASK), fn)
    yield app, fn, url


def test_a_chain_outlives_the_expiry_of_its_first_message(job) -> None:
    app, fn, _url = job
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        started = time.monotonic()
        summary = run_job_and_wait(app, TASK, "accounts", "2026-03-01", None, timeout=60, expires=1.5)
        elapsed = time.monotonic() - started
    assert elapsed > 1.5 + SLICE_S, "the chain ended before the first message's expiry: the test proves nothing"
    assert summary["slices"] == SLICES and summary["slice"] == SLICES
    assert [n for _day, n in fn.ran] == [1, 2, 3, 4]


def test_a_request_that_timed_out_unstarted_never_runs(job) -> None:
    app, fn, url = job
    with pytest.raises(TimeoutError):
        run_job_and_wait(app, TASK, "accounts", "2026-03-02", None, timeout=1, expires=1)
    client = redis.Redis.from_url(url)
    assert client.llen("accounts.jobs") == 1  # still queued when its waiter gave up
    time.sleep(0.5)
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        deadline = time.monotonic() + 20
        while client.llen("accounts.jobs") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(SLICE_S * 2)  # time enough to run a slice, were it going to
    assert fn.ran == [], "a request its waiter had given up on ran later"
    assert client.llen("accounts.jobs") == 0, "the worker never took the message"


def test_a_running_worker_is_found_by_its_queue(job) -> None:
    app, _fn, _url = job
    assert workers_serving(app, "accounts.jobs", timeout=1.0) == []
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        found: list[str] = []
        deadline = time.monotonic() + 15  # a worker answers once its consumer is up
        while not found and time.monotonic() < deadline:
            found = workers_serving(app, "accounts.jobs", timeout=2.0)
        assert len(found) == 1, found
        assert workers_serving(app, "collections.jobs", timeout=1.0) == []
