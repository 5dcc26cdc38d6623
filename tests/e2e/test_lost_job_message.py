"""A job message popped by a worker that dies before recording it as held is sent again.

kombu's Redis transport pops a job message (BRPOP) before it records it in the
``unacked`` hash; a worker killed between the two used to lose the message for good,
and the job never finished. The window is reproduced exactly with a real worker: it is
stopped (SIGSTOP) while its BRPOP waits, so Redis hands it the daily close that
``run_job_and_wait`` sends, but it never reads it; the message is then on no list and in
no hash. The worker is SIGKILLed and another started: the lost job watch
(``shared/lost_job_messages.py``) sends the same task again and the close finishes once,
within ``TAKEOVER_SECONDS`` of the kill.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import redis

from shared.celery_app import job_celery_app
from shared.job_runner import run_job_and_wait
from shared.job_timing import TAKEOVER_SECONDS
from shared.lost_job_messages import sent_key
from tests.e2e.test_killed_job_worker import kill, run_status, start_worker, stop, wait_serving, wait_until
from tests.support.system import Databases, fresh_redis_db

pytestmark = pytest.mark.e2e

DAY = date(2026, 3, 20)
QUEUE = "accounts.jobs"


def test_a_job_message_lost_in_a_killed_workers_pop_is_sent_again_and_the_job_ends_once(
    redis_db: int, tmp_path: Path
) -> None:
    dbs = Databases().create(("accounts",))
    url = fresh_redis_db(redis_db + 6)
    env = {
        "BAITIAO_BROKER_URL": url,
        "BAITIAO_DATA_DIR": str(tmp_path / "data"),
        "BAITIAO_LOG_LEVEL": "WARNING",
        **dbs.env(),
    }
    client = redis.Redis.from_url(url)
    popper = start_worker("accounts", env, tmp_path / "popper.log")
    other = None
    outcome: dict[str, Any] = {}
    try:
        wait_serving(url, QUEUE)
        time.sleep(1)  # its consumer is back in BRPOP after answering the ping
        _stop_while_in_brpop(client, popper.pid, redis_db + 6)
        app = job_celery_app("tests.lost-job", url)

        def wait_for_close() -> None:
            try:
                outcome["summary"] = run_job_and_wait(
                    app, "accounts.daily_close", "accounts", DAY.isoformat(), None, timeout=TAKEOVER_SECONDS + 60
                )
            except Exception as exc:  # noqa: BLE001 - reported by the assertions below
                outcome["error"] = exc

        waiter = threading.Thread(target=wait_for_close, daemon=True)
        waiter.start()
        wait_until(lambda: client.hlen(sent_key(QUEUE)) == 1, 30, "the close's message on record")
        time.sleep(1)
        # Redis handed the message to the stopped worker's BRPOP: it is queued nowhere and held by nobody.
        assert client.llen(QUEUE) == 0 and client.hlen("unacked") == 0, "the pop window was not reproduced"
        os.killpg(popper.pid, signal.SIGKILL)
        popper.wait(timeout=30)
        killed_at = time.monotonic()
        other = start_worker("accounts", env, tmp_path / "other.log")
        waiter.join(timeout=TAKEOVER_SECONDS)
        recovered_s = time.monotonic() - killed_at
        print(f"the close finished {recovered_s:.1f} s after the kill")
        assert not waiter.is_alive(), f"the lost close did not finish within {TAKEOVER_SECONDS} s of the kill"
        assert "error" not in outcome, outcome
        assert outcome["summary"]["business_date"] == DAY.isoformat(), outcome
        assert run_status(dbs.url("accounts"), "daily-close", DAY) == "done"
        wait_until(lambda: client.hlen(sent_key(QUEUE)) == 0, 30, "the done close's record dropped")
    finally:
        kill(popper)
        if other is not None:
            stop(other)
        dbs.drop()


def _stop_while_in_brpop(client: redis.Redis, pgid: int, db: int, tries: int = 50) -> None:
    """SIGSTOP the worker at a moment its job consumer's BRPOP is outstanding.

    kombu sends BRPOP with a timeout of about a second and sends it again when it ends: a
    stop between two leaves the message on its list. Redis shows a client waiting in
    BRPOP (flags ``b``, command ``brpop``, on the test's database ``db``; the events
    consumers wait with BLMOVE), so the stop is taken again until one is."""
    for _ in range(tries):
        os.killpg(pgid, signal.SIGSTOP)
        time.sleep(0.05)
        waiting = [c for c in client.client_list() if c.get("db") == str(db) and c.get("cmd") == "brpop"]
        if any("b" in c.get("flags", "") for c in waiting):
            return
        os.killpg(pgid, signal.SIGCONT)
        time.sleep(0.1)
    raise AssertionError(f"the worker was never stopped inside its BRPOP in {tries} tries")
