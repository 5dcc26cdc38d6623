"""The lost job watch on real Redis: what is queued or held is never sent again, what is
done or void is dropped, and only a message seen nowhere on two sweeps is sent again.

The sweeps are driven by hand with their clock (``now``); messages are published by a
real Celery app of the system (``job_celery_app``) and taken as a worker takes them
(kombu's ``basic_get`` records the delivery in Celery's ``unacked`` hash).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Connection

from shared.bus.kombu_redis import priority_queue_keys
from shared.celery_app import job_celery_app
from shared.job_timing import LOST_JOB_CONFIRM_SECONDS
from shared.lost_job_messages import LostJobWatch, sent_key
from tests.support.system import fresh_redis_db

pytestmark = pytest.mark.integration

QUEUE = "accounts.jobs"
TASK = "accounts.daily_close"


@pytest.fixture()
def broker(redis_db: int) -> Iterator[tuple[Celery, redis.Redis, LostJobWatch, Any]]:
    url = fresh_redis_db(redis_db + 6)
    app = job_celery_app("tests.lost-job-watch", url)
    client = redis.Redis.from_url(url)
    connection = Connection(url)
    channel = connection.default_channel
    watch = LostJobWatch(app, QUEUE, client, channel.unacked_key, priority_queue_keys(channel, QUEUE))
    yield app, client, watch, channel
    connection.release()


def send(app: Celery, **options: Any) -> str:
    return str(app.send_task(TASK, kwargs={"business_date": "2026-03-20", "at": None}, queue=QUEUE, **options).id)


def record(client: redis.Redis, task_id: str) -> dict[str, Any] | None:
    raw = client.hget(sent_key(QUEUE), task_id)
    return json.loads(raw) if raw else None


def test_a_message_seen_nowhere_on_two_sweeps_is_sent_again_with_its_id_and_arguments(broker) -> None:
    app, client, watch, _ = broker
    task_id = send(app)
    assert record(client, task_id)["kwargs"] == {"business_date": "2026-03-20", "at": None}
    now = time.time()
    assert watch.sweep_once(now) == []  # queued: nothing to do
    assert client.rpop(QUEUE)  # what a worker killed in its pop leaves: the message nowhere
    assert watch.sweep_once(now + 1) == []
    assert record(client, task_id)["missing_since"] == now + 1
    assert watch.sweep_once(now + 1 + LOST_JOB_CONFIRM_SECONDS / 2) == [], "sent again before the confirmation"
    assert watch.sweep_once(now + 1 + LOST_JOB_CONFIRM_SECONDS) == [task_id]
    document = json.loads(client.lindex(QUEUE, 0))
    assert document["headers"]["id"] == task_id and document["headers"]["task"] == TASK
    assert client.llen(QUEUE) == 1
    assert "missing_since" not in record(client, task_id)  # on record afresh, as sent
    assert watch.sweep_once(now + 100) == []


def test_a_message_held_by_a_worker_is_never_sent_again_and_is_dropped_once_done(broker) -> None:
    app, client, watch, channel = broker
    task_id = send(app)
    message = channel.basic_get(queue=QUEUE, no_ack=False)  # held: in the unacked hash
    assert message is not None and client.llen(QUEUE) == 0 and client.hlen(channel.unacked_key) == 1
    now = time.time()
    for later in (0, 10, 20, 600):
        assert watch.sweep_once(now + later) == []
    assert "missing_since" not in record(client, task_id)
    app.backend.store_result(task_id, {"status": "ok"}, "SUCCESS")
    message.ack()
    assert watch.sweep_once(now + 700) == []
    assert record(client, task_id) is None  # done: off the record


def test_a_started_task_stays_on_record_and_a_failed_one_is_dropped(broker) -> None:
    app, client, watch, channel = broker
    task_id = send(app)
    channel.basic_get(queue=QUEUE, no_ack=False)
    app.backend.store_result(task_id, None, "STARTED")
    watch.sweep_once(time.time())
    assert record(client, task_id) is not None
    app.backend.store_result(task_id, RuntimeError("boom"), "FAILURE")
    watch.sweep_once(time.time())
    assert record(client, task_id) is None


def test_an_expired_first_message_lost_is_dropped_not_sent_again(broker) -> None:
    app, client, watch, _ = broker
    task_id = send(app, expires=1)
    client.rpop(QUEUE)
    now = time.time() + 5  # past its expiry: a worker would revoke it anyway
    assert watch.sweep_once(now) == []
    assert watch.sweep_once(now + LOST_JOB_CONFIRM_SECONDS) == []
    assert record(client, task_id) is None and client.llen(QUEUE) == 0


def test_two_workers_sweeping_at_once_send_a_lost_message_again_once(broker) -> None:
    app, client, watch, _ = broker
    task_id = send(app)
    client.rpop(QUEUE)
    now = time.time()
    watch.sweep_once(now)
    client.set(f"{sent_key(QUEUE)}:sweeping", "1")  # another worker's sweep under way
    assert watch.sweep_once(now + LOST_JOB_CONFIRM_SECONDS) == []
    client.delete(f"{sent_key(QUEUE)}:sweeping")
    assert watch.sweep_once(now + LOST_JOB_CONFIRM_SECONDS) == [task_id]
    assert client.llen(QUEUE) == 1
