"""Two beats send each due job once, and a standby beat takes over a killed one within two minutes.

Two real beat processes (``shared/beat.py``'s app, celery-redbeat on real Redis, the
default lock timeout) with one job due every two seconds, sent to a queue nobody
consumes: while both live, the queue grows by one message per period, not two; once the
beat holding the lock is SIGKILLed, the standby sends the next one within
``TAKEOVER_SECONDS``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from shared.job_timing import TAKEOVER_SECONDS
from shared.settings import Settings
from tests.support.system import ROOT, fresh_redis_db

pytestmark = pytest.mark.e2e

PERIOD = 2.0
QUEUE = "beat-test.jobs"
BEAT = f"""
import sys
from celery.schedules import schedule
from shared.beat import make_beat_app
app = make_beat_app(sys.argv[1])
app.conf.beat_schedule = {{"tick": {{"task": "beat_test.tick", "schedule": schedule({PERIOD}),
                                     "options": {{"queue": "{QUEUE}"}}}}}}
app.start(["beat", "--loglevel", "INFO"])
"""


def _start(url: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", BEAT, url],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _arrivals(client: redis.Redis, seconds: float) -> list[float]:
    """The times at which the queue grew, one entry per message, over ``seconds``."""
    arrivals: list[float] = []
    seen = client.llen(QUEUE)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now_len = client.llen(QUEUE)
        arrivals += [time.monotonic()] * (now_len - seen)
        seen = now_len
        time.sleep(0.1)
    return arrivals


def test_two_beats_send_each_job_once_and_the_standby_takes_over_within_two_minutes(redis_db, tmp_path) -> None:
    assert Settings().beat_lock_timeout < TAKEOVER_SECONDS
    url = fresh_redis_db(redis_db + 7)
    client = redis.Redis.from_url(url)
    first = _start(url, tmp_path / "beat1.log")
    second: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 60
        while not client.exists("baitiao.beat:lock"):
            assert time.monotonic() < deadline, "the first beat never took the lock"
            time.sleep(0.2)
        holder = client.get("baitiao.beat:lock")
        second = _start(url, tmp_path / "beat2.log")
        time.sleep(5)  # the second beat is up and waiting on the lock
        window = 20.0
        arrivals = _arrivals(client, window)
        assert second.poll() is None and client.get("baitiao.beat:lock") == holder
        # One beat's worth: one message a period (two beats would send twice as many).
        assert window / PERIOD - 2 <= len(arrivals) <= window / PERIOD + 1, arrivals
        _kill(first)
        killed_at = time.monotonic()
        before = client.llen(QUEUE)
        while client.llen(QUEUE) == before:
            assert time.monotonic() - killed_at < TAKEOVER_SECONDS, "the standby beat never took over"
            time.sleep(0.2)
        took_over_s = time.monotonic() - killed_at
        print(f"standby beat sent the next job {took_over_s:.1f} s after the kill")
        assert client.get("baitiao.beat:lock") not in (None, holder)
        # And now it alone sends, one a period.
        arrivals = _arrivals(client, 10.0)
        assert 10.0 / PERIOD - 2 <= len(arrivals) <= 10.0 / PERIOD + 1, arrivals
    finally:
        _kill(first)
        if second is not None:
            _kill(second)
