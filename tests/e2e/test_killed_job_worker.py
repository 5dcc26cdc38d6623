"""A worker SIGKILLed while it holds a job slice costs a short delay, and nothing twice.

Two accounts workers on real PostgreSQL and Redis (either pool). The first is started alone with
``BAITIAO_FAULT=hold_after_slice:daily-close`` (``shared/bus/faults.py``): it takes the
daily close that ``baitiao jobs run`` sends, commits the slice, and holds it unacked
(its task never returns). The second worker starts and stays idle: the held slice is
not handed to it while its holder lives, however long past the visibility timeout (the
holder re-stamps its delivery, ``shared/job_delivery_renewal.py``). Then the holder is
SIGKILLed: the slice is delivered again to the live worker, ``jobs run`` returns ok
within two minutes of the kill (``shared/job_timing.py``, ``TAKEOVER_SECONDS``) with the
close's own summary, and the
close's effects equal an undisturbed close's of the same portfolio, run in-process on a
database of its own: one accrual and one set of postings per overdue bill, one event
each, the bills and accounts as one close leaves them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from baitiao.processes import die_with_parent
from shared.job_timing import JOBS_VISIBILITY_TIMEOUT, TAKEOVER_SECONDS, UNACKED_SWEEP_SECONDS
from tests.support.system import ROOT, Databases, fresh_redis_db

pytestmark = pytest.mark.e2e

DAY = date(2026, 3, 20)  # the portfolio of baitiao/bench_close.py is closed up to 03-19
ACCOUNTS = 3000
OVERDUE_SHARE = 0.1


def start_worker(
    service: str, env: dict[str, str], log: Path, extra: dict[str, str] | None = None, pool: str = "threads"
) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in {**os.environ, **env, **(extra or {})}.items()}
    if not extra or "BAITIAO_FAULT" not in extra:
        full.pop("BAITIAO_FAULT", None)
    return subprocess.Popen(
        [sys.executable, "-m", "baitiao.cli", "worker", service, "--loglevel", "WARNING", "--pool", pool],
        env=full,
        cwd=ROOT,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def stop(*procs: subprocess.Popen[bytes]) -> None:
    """SIGTERM them all at once (each soft shutdown then runs side by side), SIGKILL what lingers."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill(proc)


def wait_serving(url: str, queue: str, timeout: float = 120) -> None:
    """Until a worker consumes ``queue`` (a worker starting under load takes a while)."""
    from celery import Celery

    from shared.job_runner import workers_serving

    app = Celery("probe", broker=url)
    wait_until(lambda: bool(workers_serving(app, queue, 1.0)), timeout, f"a worker serving {queue}")


def start_job(name: str, day: date, env: dict[str, str], timeout: int = 600) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "baitiao.cli",
            "jobs",
            "run",
            name,
            "--date",
            day.isoformat(),
            "--timeout",
            str(timeout),
        ],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def close_effects(url: str, day: date) -> dict[str, Any]:
    """What a close of ``day`` leaves behind, without what differs between runs (ids, times)."""
    engine = create_engine(url)
    with engine.connect() as conn:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return sorted(tuple(row) for row in conn.execute(text(sql), {"d": day}))

        effects = {
            "accruals": rows(
                "SELECT bill_pk, basis_fen, penalty_fen, late_fee_fen FROM daily_accruals WHERE business_date = :d"
            ),
            "ledger": Counter(
                rows(
                    "SELECT account_pk, bill_pk, ledger_account, debit_fen, credit_fen, kind "
                    "FROM ledger_entries WHERE business_date = :d"
                )
            ),
            "bills": rows(
                "SELECT pk, dpd, unpaid_penalty_fen, unpaid_late_fee_fen, penalty_charged_fen, "
                "late_fee_charged_fen, overdue_since, bureau_marked_on, last_closed_on FROM bills"
            ),
            "accounts": rows("SELECT pk, level, max_dpd, credit_limit_fen, limit_cut FROM accounts"),
            "events": Counter(rows("SELECT type, aggregate_id FROM outbox")),
            "runs": rows("SELECT job, business_date, status FROM job_runs"),
        }
    engine.dispose()
    return effects


def undisturbed_close(url: str, day: date) -> dict[str, Any]:
    """The same portfolio closed once, in-process, with nothing killed."""
    from baitiao import registry
    from baitiao.bench_close import build_portfolio
    from services.accounts.daily_close import daily_close
    from shared.bus.outbox import Outbox
    from shared.clock import SHANGHAI, FixedClock
    from shared.jobs import JobContext
    from shared.rules import ProductRules
    from shared.settings import Settings

    engine = create_engine(url)
    build_portfolio(engine, ACCOUNTS, OVERDUE_SHARE)
    clock = FixedClock(datetime(day.year, day.month, day.day, 0, 30, tzinfo=SHANGHAI))
    state: dict[str, Any] = {}
    while True:
        ctx = JobContext(
            "accounts",
            "daily-close",
            day,
            None,
            engine,
            Outbox(registry.definition("accounts").bus.outbox),
            ProductRules(),
            clock,
            Settings(accounts_db_url=url),
            state,
        )
        result = daily_close(ctx)
        if not result.more:
            break
        state = result.state
    engine.dispose()
    return close_effects(url, day)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def run_status(url: str, job: str, day: date) -> str | None:
    engine = create_engine(url)
    with engine.connect() as conn:
        status = conn.scalar(
            text("SELECT status FROM job_runs WHERE job = :j AND business_date = :d"), {"j": job, "d": day}
        )
    engine.dispose()
    return status


@pytest.fixture()
def two_databases() -> Any:
    from baitiao.bench_close import build_portfolio

    killed, reference = Databases().create(("accounts",)), Databases().create(("accounts",))
    engine = create_engine(killed.url("accounts"))
    build_portfolio(engine, ACCOUNTS, OVERDUE_SHARE)
    engine.dispose()
    yield killed, reference
    killed.drop()
    reference.drop()


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_a_slice_held_by_a_killed_worker_runs_again_on_the_live_one_within_two_minutes(
    two_databases, redis_db, tmp_path, pool: str
) -> None:
    killed_dbs, reference_dbs = two_databases
    env = {
        "BAITIAO_BROKER_URL": fresh_redis_db(redis_db + 6),
        "BAITIAO_DATA_DIR": str(tmp_path / "data"),
        "BAITIAO_LOG_LEVEL": "WARNING",
        **killed_dbs.env(),
    }
    url = killed_dbs.url("accounts")
    holder = start_worker(
        "accounts", env, tmp_path / "holder.log", {"BAITIAO_FAULT": "hold_after_slice:daily-close"}, pool=pool
    )
    other: subprocess.Popen[bytes] | None = None
    wait_serving(env["BAITIAO_BROKER_URL"], "accounts.jobs")
    job = start_job("daily-close", DAY, env)
    try:
        # The holder took the close and committed its slice; the slice's message is unacked.
        wait_until(
            lambda: job.poll() is None and run_status(url, "daily-close", DAY) == "done",
            120,
            "the holder's slice to commit (or the job ended: see its output)",
        )
        other = start_worker("accounts", env, tmp_path / "other.log", pool=pool)
        # Past the visibility timeout and a sweep: the live holder keeps its slice.
        time.sleep(JOBS_VISIBILITY_TIMEOUT + 3 * UNACKED_SWEEP_SECONDS)
        assert job.poll() is None, "the slice of a live worker was handed to the other worker"
        assert holder.poll() is None and other.poll() is None
        os.kill(holder.pid, signal.SIGKILL)  # the worker's main process (a prefork pool's children die with it)
        killed_at = time.monotonic()
        try:
            out, err = job.communicate(timeout=TAKEOVER_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the job did not finish within {TAKEOVER_SECONDS} s of the kill")
        recovered_s = time.monotonic() - killed_at
        print(f"job finished {recovered_s:.1f} s after the kill")
        assert job.returncode == 0, (out, err)
        # the slice ran again from its state: the date was closed once, by the holder, and the
        # run's summary is the one the holder recorded with the date (shared/job_runs.py)
        summary = json.loads(out)
        assert summary["status"] == "closed" and summary["dates_closed"] == [DAY.isoformat()], summary
        assert summary["bills_overdue"] > 0, summary
        assert recovered_s < TAKEOVER_SECONDS
    finally:
        if job.poll() is None:
            job.kill()
        kill(holder)
        if other is not None:
            stop(other)
    effects = close_effects(url, DAY)
    assert effects["runs"] == [("daily-close", DAY, "done")]
    overdue = sum(1 for bill in effects["bills"] if bill[1] > 0)
    assert len(effects["accruals"]) == overdue > 0  # one accrual per overdue bill for the day
    assert effects == undisturbed_close(reference_dbs.url("accounts"), DAY)
