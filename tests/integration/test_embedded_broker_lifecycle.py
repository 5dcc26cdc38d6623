"""The embedded broker is started only by the commands that need it, and never left behind.

Each test has a fresh data directory, no broker configured and a port of its own:
afterwards nothing may listen there unless the test itself started the broker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, insert

from baitiao import registry
from shared.embedded_broker import ensure_embedded_broker, stop_embedded_broker
from shared.settings import Settings
from tests.support.cli import cli_env, free_port, listening, run_cli, stop_redis_on
from tests.support.system import ROOT


@pytest.fixture()
def embedded(tmp_path: Path):
    port = free_port()
    data = tmp_path / "data"
    env = cli_env(BAITIAO_DATA_DIR=str(data), BAITIAO_EMBEDDED_BROKER_PORT=str(port))
    try:
        yield env, data, port
    finally:
        stop_redis_on(port)


def _letter(data: Path) -> int:
    table = registry.definition("accounts").bus.dead_letters
    engine = create_engine(f"sqlite:///{data / 'accounts.db'}")
    try:
        with engine.begin() as conn:
            return int(
                conn.execute(
                    insert(table).values(
                        queue="accounts.events",
                        reason="bad",
                        body=json.dumps({"n": 1}),
                        attempts=1,
                        created_at=datetime.now(timezone.utc),
                    )
                ).inserted_primary_key[0]
            )
    finally:
        engine.dispose()


def test_reading_commands_never_start_it(embedded) -> None:
    env, data, port = embedded
    for command in (
        ("status",),
        ("jobs", "list"),
        ("db", "upgrade"),
        ("dlq", "list"),
        ("status", "--json"),
        ("jobs", "run", "statements", "--date", "2026-03-01"),
        ("account", "show", "acc-1"),
    ):
        result = run_cli(*command, env=env)
        assert "Traceback" not in result.stderr, result.stderr
        assert not listening(port), f"`baitiao {' '.join(command)}` left a broker on {port}"
    assert not (data / "broker.log").exists(), "a reading command started the embedded broker"
    status = json.loads(run_cli("status", "--json", env=env).stdout)
    assert status["broker"]["state"] == "not running"


def test_no_worker_on_a_stopped_embedded_broker_is_said_in_one_line(embedded) -> None:
    env, _data, port = embedded
    result = run_cli("jobs", "run", "statements", "--date", "2026-03-01", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: no worker serves accounts.jobs: the embedded broker is not running "
        "(start `baitiao worker accounts`); nothing sent"
    ]
    assert not listening(port)


def test_replay_starts_it_and_stops_it_and_the_message_is_kept(embedded) -> None:
    env, data, port = embedded
    assert run_cli("db", "upgrade", "--service", "accounts", env=env).returncode == 0
    number = _letter(data)
    result = run_cli("dlq", "replay", f"accounts:{number}", env=env)
    assert result.returncode == 0, result.stderr
    assert not listening(port), "dlq replay left the broker it started running"
    settings = Settings(data_dir=data, embedded_broker_port=port)
    ensure_embedded_broker(settings)  # the replayed message survived the shutdown (AOF)
    try:
        assert redis.Redis(port=port).llen("accounts.events") == 1
    finally:
        stop_embedded_broker(settings)


def test_a_broker_running_before_the_command_is_left_running(embedded) -> None:
    env, data, port = embedded
    assert run_cli("db", "upgrade", "--service", "accounts", env=env).returncode == 0
    number = _letter(data)
    settings = Settings(data_dir=data, embedded_broker_port=port)
    ensure_embedded_broker(settings)
    try:
        result = run_cli("dlq", "replay", f"accounts:{number}", env=env)
        assert result.returncode == 0, result.stderr
        assert listening(port), "the command stopped a broker it had not started"
        assert redis.Redis(port=port).llen("accounts.events") == 1
    finally:
        stop_embedded_broker(settings)


def test_a_worker_keeps_the_broker_it_started_while_it_runs_and_stops_it_on_exit(embedded, tmp_path) -> None:
    env, data, port = embedded
    worker = subprocess.Popen(
        [sys.executable, "-m", "baitiao.cli", "worker", "accounts"],
        env=env,
        cwd=ROOT,
        stdout=open(tmp_path / "worker.log", "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        ran = None
        while time.monotonic() < deadline:
            ran = run_cli("jobs", "run", "statements", "--date", "2026-03-01", "--timeout", "60", env=env)
            if ran.returncode == 0:
                break
            time.sleep(1)
        assert ran is not None and ran.returncode == 0, (
            ran.stderr if ran else "",
            (tmp_path / "worker.log").read_text(),
        )
        assert json.loads(ran.stdout)["job"] == "statements"
        assert listening(port), "jobs run stopped the worker's broker"
        os.kill(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    deadline = time.monotonic() + 10
    while listening(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not listening(port), "the worker left the broker it started running"
    assert (data / "accounts.db").exists()


def _worker(service: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "baitiao.cli", "worker", service],
        env=env,
        cwd=ROOT,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_started(log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if log.exists() and "event_bus_started" in log.read_text(errors="replace"):
            return
        time.sleep(0.3)
    pytest.fail(f"worker never started: {log.read_text(errors='replace')[-2000:]}")


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.kill(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def _gone(port: int) -> bool:
    deadline = time.monotonic() + 10
    while listening(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not listening(port)


def test_the_last_worker_to_stop_ends_the_broker_the_first_one_started(embedded, tmp_path) -> None:
    env, _data, port = embedded
    first = _worker("accounts", env, tmp_path / "accounts.log")
    second = None
    try:
        _wait_started(tmp_path / "accounts.log")
        second = _worker("collections", env, tmp_path / "collections.log")
        _wait_started(tmp_path / "collections.log")
        _stop(first)
        assert listening(port), "the first worker pulled the broker from under the second"
        assert "left running" in (tmp_path / "accounts.log").read_text(errors="replace")
        _stop(second)
        assert _gone(port), "the last worker left the broker running"
    finally:
        for worker in (first, second):
            if worker is not None:
                _stop(worker)


def test_a_broker_started_on_purpose_outlives_the_workers(embedded, tmp_path) -> None:
    env, _data, port = embedded
    started = run_cli("broker", "start", env=env)
    assert started.returncode == 0, started.stderr
    worker = _worker("restructuring", env, tmp_path / "restructuring.log")
    try:
        _wait_started(tmp_path / "restructuring.log")
    finally:
        _stop(worker)
    assert listening(port), "a worker stopped a broker kept by `broker start`"
    stopped = run_cli("broker", "stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert _gone(port)
