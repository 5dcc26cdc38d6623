"""``baitiao health worker|beat`` against real processes: alive passes, a stalled loop or beat fails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baitiao import liveness
from baitiao.processes import die_with_parent
from tests.deployment.observed import ObservedWorkers
from tests.support.system import ROOT, Databases, fresh_redis_db

pytestmark = [pytest.mark.e2e, pytest.mark.observability]


def _compose_timeout() -> float:
    """The healthchecks' own timeout in docker-compose.yml: a check slower than it fails."""
    from tests.deployment.compose import load_project
    from tests.deployment.test_compose_stack import user_environment

    services = load_project(user_environment()).services
    return min(
        services[name].healthcheck.timeout_s for name in ("worker-accounts", "beat") if services[name].healthcheck
    )


COMPOSE_TIMEOUT_S = _compose_timeout()


def health(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the check as the container's healthcheck does; returns it and its wall time."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "baitiao.liveness", *args],
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done, time.monotonic() - started


def wait_health(
    args: list[str], healthy: bool, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + timeout
    while True:
        done, _ = health(*args, env=env)
        if (done.returncode == 0) == healthy or time.monotonic() > deadline:
            return done
        time.sleep(0.5)


@pytest.fixture(scope="module")
def broker_url(redis_db: int) -> str:
    return fresh_redis_db(redis_db + 1)


@pytest.fixture()
def workers(broker_url: str, databases: Databases, tmp_path: Path) -> Iterator[ObservedWorkers]:
    running = ObservedWorkers(
        {
            "BAITIAO_BROKER_URL": broker_url,
            "BAITIAO_LOG_LEVEL": "WARNING",
            "BAITIAO_DATA_DIR": str(tmp_path / "data"),
            **databases.env(),
        },
        tmp_path,
    )
    yield running
    running.stop_all()


# Passes before the loop stalls: the idle consumer goes round about 40 times a second (it
# waits 25 ms for a batch), the idle relay about 10 (it polls every 100 ms): some 10 s each.
@pytest.mark.parametrize(
    "fault, stalled, alive",
    [
        ("consumer_stall_after:400", "events-consumer", "outbox-relay"),
        ("relay_stall_after:100", "outbox-relay", "events-consumer"),
    ],
)
def test_worker_health_fails_once_a_loop_stops_polling(
    workers: ObservedWorkers, fault: str, stalled: str, alive: str
) -> None:
    workers.start("restructuring", {"BAITIAO_FAULT": fault})
    workers.wait_serving("restructuring")
    url = workers.metrics_url("restructuring")
    check = ["worker", "--url", url, "--max-age", "3"]

    ok = wait_health(check, healthy=True, timeout=30)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"restructuring {stalled}" in ok.stdout and f"restructuring {alive}" in ok.stdout

    failed = wait_health(check, healthy=False, timeout=60)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"restructuring {stalled}: stale" in failed.stdout
    assert alive not in failed.stdout  # the other loop still goes round
    # The process is up and /metrics answers: what the old healthcheck looked at still passes.
    assert workers.alive("restructuring") and "baitiao_loop_heartbeat" in workers.metrics("restructuring")
    _, seconds = health(*check)
    assert seconds < COMPOSE_TIMEOUT_S, seconds


def test_worker_health_fails_when_nothing_serves_metrics(workers: ObservedWorkers) -> None:
    done, seconds = health("worker", "--url", "http://127.0.0.1:9/metrics")
    assert done.returncode == 1 and "cannot read" in done.stdout
    assert seconds < COMPOSE_TIMEOUT_S


def test_the_check_restates_the_beats_lock_and_interval() -> None:
    from shared.beat import make_beat_app

    for timeout in (5, 10, 60, 300, 900):
        conf = make_beat_app("redis://127.0.0.1:6379/0", timeout).conf
        assert conf.redbeat_lock_key == liveness.BEAT_LOCK_KEY
        assert conf.beat_max_loop_interval == liveness.beat_max_loop_interval(timeout)


def test_beat_health_follows_the_beats_lock(broker_url: str, tmp_path: Path) -> None:
    env = {"BAITIAO_BROKER_URL": broker_url, "BAITIAO_BEAT_LOCK_TIMEOUT": "10", "BAITIAO_DATA_DIR": str(tmp_path)}
    none, _ = health("beat", env=env)
    assert none.returncode == 1 and "no beat holds" in none.stdout

    log = (tmp_path / "beat.log").open("wb")
    beat = subprocess.Popen(
        [sys.executable, "-m", "baitiao.cli", "beat", "--loglevel", "WARNING"],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    try:
        ok = wait_health(["beat", "--max-age", "4"], healthy=True, timeout=60, env=env)
        assert ok.returncode == 0, ok.stdout + (tmp_path / "beat.log").read_text()[-2000:]
        time.sleep(5)  # several ticks (2 s apart with this lock timeout): it stays alive
        again, seconds = health("beat", "--max-age", "4", env=env)
        assert again.returncode == 0, again.stdout
        assert seconds < COMPOSE_TIMEOUT_S, seconds

        os.killpg(beat.pid, signal.SIGSTOP)  # a beat that stopped ticking, its lock still there
        stuck = wait_health(["beat", "--max-age", "4"], healthy=False, timeout=20, env=env)
        assert stuck.returncode == 1 and "last renewed" in stuck.stdout, stuck.stdout
    finally:
        os.killpg(beat.pid, signal.SIGCONT)
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(timeout=30)
    released = wait_health(["beat"], healthy=False, timeout=10, env=env)
    assert "no beat holds" in released.stdout  # a beat stopping cleanly releases the lock
