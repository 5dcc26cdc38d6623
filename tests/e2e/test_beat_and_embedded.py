"""The beat (celery-redbeat, safe when two run by mistake) and the embedded default."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.support.customers import credit_line, new_id, purchase
from tests.support.signing import generated_ring
from tests.support.system import ROOT, OutsideSystem, fresh_redis_db

pytestmark = pytest.mark.e2e

JOBS = ("statements", "daily-close", "credit-report", "plan-monitor", "collections-daily", "contact-dispatch")


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "baitiao.cli", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_two_beats_one_lock_and_the_schedule_of_events_md(redis_db, tmp_path) -> None:
    url = fresh_redis_db(redis_db + 4)
    env = {"BAITIAO_BROKER_URL": url, "BAITIAO_BEAT_LOCK_TIMEOUT": "10"}
    client = redis.Redis.from_url(url)
    first = _start(["beat", "--loglevel", "DEBUG"], env, tmp_path / "beat1.log")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not client.exists("baitiao.beat:lock"):
            time.sleep(0.2)
        holder = client.get("baitiao.beat:lock")
        assert holder, "the first beat never took the lock"
        for job in JOBS:
            assert client.exists(f"baitiao.beat:{job}"), f"{job} is not scheduled"
        second = _start(["beat", "--loglevel", "DEBUG"], env, tmp_path / "beat2.log")
        try:
            time.sleep(6)
            assert second.poll() is None  # alive, waiting on the lock
            assert client.get("baitiao.beat:lock") == holder  # still the first beat's
            _stop(first)  # the first dies: the second takes over once the lock expires
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and client.get("baitiao.beat:lock") in (None, holder):
                time.sleep(0.5)
            taken = client.get("baitiao.beat:lock")
            assert taken and taken != holder, "the second beat never took over"
        finally:
            _stop(second)
    finally:
        _stop(first)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_embedded_default_needs_no_server(tmp_path) -> None:
    """No broker URL, no database URL: SQLite files and the embedded Redis under the data dir."""
    port = _free_port()
    env = {"BAITIAO_DATA_DIR": str(tmp_path / "data"), "BAITIAO_EMBEDDED_BROKER_PORT": str(port)}
    for key in (
        "BAITIAO_BROKER_URL",
        "BAITIAO_ACCOUNTS_DB_URL",
        "BAITIAO_COLLECTIONS_DB_URL",
        "BAITIAO_RESTRUCTURING_DB_URL",
    ):
        env[key] = ""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BAITIAO_")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "baitiao.cli", "worker", "accounts"],
        env={**clean, **{k: v for k, v in env.items() if v}},
        cwd=ROOT,
        stdout=open(tmp_path / "worker.log", "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=port).ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.2)
        # the outside systems hold the keys the embedded default generated in its data dir
        out = OutsideSystem(f"redis://127.0.0.1:{port}/0", ring=generated_ring(tmp_path / "data"))
        account = new_id("acc")
        out.publish("credit.line.granted", credit_line(account, "800.00"), account)
        out.publish("purchase.requested", purchase(account, "100.00"), account)
        approved = out.wait_for("purchase.approved", lambda p: p["account_id"] == account, timeout=60)
        assert approved[0]["payload"]["available_limit"] == "700.00"
        out.close()
        assert (tmp_path / "data" / "accounts.db").exists()
        assert (tmp_path / "data" / "appendonly.aof").exists() or any((tmp_path / "data").glob("appendonly*"))
    finally:
        _stop(worker)
        try:
            redis.Redis(port=port).shutdown(nosave=True)
        except redis.RedisError:
            pass
