"""A job slice whose database stays away longer than the slice may wait in its task hands
the wait over to the broker (a Celery retry of the same task: same id, same arguments)
and finishes once the database is back: the job's waiter gets its result, not a failure.

A real Celery worker on real Redis runs the job task; the outage is a real refused
connection (a port nobody listens on). The in-task wait is set to nothing, so every
failure goes through the retry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from sqlalchemy import create_engine, text

from baitiao import registry
from shared import jobs
from shared.bus.topology import jobs_queue_name
from shared.celery_app import base_celery_config
from shared.jobs import JobContext, JobResult, register_job
from shared.service import JobSpec
from shared.settings import Settings
from tests.support.outages import free_port
from tests.support.system import fresh_redis_db

pytestmark = pytest.mark.integration


def test_a_slice_outlasting_its_wait_is_retried_by_its_task_until_it_succeeds(
    monkeypatch: pytest.MonkeyPatch, quiet_redis_db: int, tmp_path: Path
) -> None:
    monkeypatch.setattr(jobs, "OUTAGE_WAIT_S", 0.0)
    monkeypatch.setattr(jobs, "OUTAGE_RETRY_COUNTDOWN_S", 0.2)
    url = fresh_redis_db(quiet_redis_db)
    app = Celery("outage-probe")
    app.conf.update(base_celery_config(url))
    app.conf.task_default_queue = jobs_queue_name("accounts")
    app.baitiao_settings = Settings(
        broker_url=url,
        data_dir=tmp_path,
        accounts_db_url=f"sqlite:///{tmp_path}/accounts.db",
    )
    away = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    tries: list[dict[str, Any]] = []
    tokens: set[str] = set()

    def probe(ctx: JobContext) -> JobResult:
        tries.append(dict(ctx.state))
        tokens.add(ctx.run)
        if len(tries) <= 3:
            with away.connect() as conn:  # connection refused: the database is away
                conn.execute(text("SELECT 1"))
        return JobResult({"tries": len(tries)})

    register_job(app, registry.definition("accounts"), JobSpec("outage-probe", "test.outage_probe"), probe)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        result = app.send_task(
            "test.outage_probe",
            kwargs={"business_date": "2026-03-12", "state": {"cursor": 4}},
            queue=jobs_queue_name("accounts"),
        )
        summary = result.get(timeout=60)
    assert summary["tries"] == 4 and summary["job"] == "outage-probe"
    assert tries == [{"cursor": 4}] * 4  # every try from the state the job gave it
    assert tokens == {result.id}  # one lease token through all the retries: its task's id
