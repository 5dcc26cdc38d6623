"""The job messages' delivery renewal (``shared/job_delivery_renewal.py``) against kombu's own sweep.

On real Redis, with the job connection's transport options (a visibility timeout shortened
to 2 s so the test is quick): a held message whose delivery is re-stamped survives kombu's
``QoS.restore_visible``; once the re-stamping stops, the same sweep puts it back on its
queue; a message acked meanwhile is never brought back into the index.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue

from shared.job_delivery_renewal import DeliveryRenewal, renews_deliveries, restamp
from shared.job_timing import jobs_transport_options
from tests.support.system import fresh_redis_db

pytestmark = pytest.mark.integration

VISIBILITY = 2
QUEUE = Queue("renewal.jobs", Exchange("renewal.jobs", type="direct"), routing_key="renewal.jobs")


@pytest.fixture()
def broker(quiet_redis_db: int) -> Iterator[str]:
    url = fresh_redis_db(quiet_redis_db)
    yield url
    redis.Redis.from_url(url).flushdb()


def _connection(url: str) -> Connection:
    return Connection(url, transport_options={**jobs_transport_options(), "visibility_timeout": VISIBILITY})


def _hold_one(connection: Connection) -> object:
    channel = connection.channel()
    Producer(channel).publish(
        {"slice": 1}, exchange=QUEUE.exchange, routing_key="renewal.jobs", declare=[QUEUE], serializer="json"
    )
    message = QUEUE(channel).get(no_ack=False)  # as a worker holds a job message (acks_late)
    assert message is not None
    return message


def _sweep(connection: Connection) -> None:
    """kombu's own sweep, as a live worker's channel runs it."""
    channel = connection.default_channel
    channel.qos.restore_visible(num=channel.unacked_restore_limit, interval=1)


def test_a_held_message_is_kept_while_renewed_and_swept_back_once_not(broker) -> None:
    worker, other, renewer = _connection(broker), _connection(broker), _connection(broker)
    client = redis.Redis.from_url(broker)
    message = _hold_one(worker)
    tag = message.delivery_tag
    assert renews_deliveries(renewer.default_channel)
    renewal = DeliveryRenewal(renewer.default_channel, held=lambda: [tag], every=0.3)

    thread = threading.Thread(target=renewal.run, daemon=True)
    thread.start()
    try:
        time.sleep(VISIBILITY * 2)
        _sweep(other)
        assert client.llen("renewal.jobs") == 0, "a renewed delivery was swept back"
        assert client.hexists("unacked", tag)
    finally:
        renewal.stop()
        thread.join(timeout=5)
    time.sleep(VISIBILITY + 0.5)
    _sweep(other)
    assert client.llen("renewal.jobs") == 1, "a delivery nobody renews was not swept back"
    assert not client.hexists("unacked", tag)
    for conn in (worker, other, renewer):
        conn.release()


def test_renewing_an_acked_message_does_not_bring_it_back(broker) -> None:
    worker, renewer = _connection(broker), _connection(broker)
    client = redis.Redis.from_url(broker)
    message = _hold_one(worker)
    tag = message.delivery_tag
    assert restamp(renewer.default_channel, [tag]) == 1
    message.ack()
    assert restamp(renewer.default_channel, [tag]) == 0
    assert client.zscore("unacked_index", tag) is None and not client.hexists("unacked", tag)
    worker.release()
    renewer.release()


def test_the_job_connection_sweeps_often_enough_for_the_takeover() -> None:
    """kombu's event loop sweeps every ``unacked_restore_interval`` s and scans on every
    ``unacked_restore_throttle``-th sweep: the options must reach kombu's channel."""
    from shared.job_timing import JOBS_VISIBILITY_TIMEOUT, TAKEOVER_SECONDS, UNACKED_SWEEP_SECONDS

    with Connection("redis://127.0.0.1:1/0", transport_options=jobs_transport_options()) as connection:
        options = connection.transport_options
    assert options["visibility_timeout"] == JOBS_VISIBILITY_TIMEOUT
    assert options["unacked_restore_throttle"] == 1
    assert options["unacked_restore_interval"] * options["unacked_restore_throttle"] == UNACKED_SWEEP_SECONDS
    assert JOBS_VISIBILITY_TIMEOUT + UNACKED_SWEEP_SECONDS < TAKEOVER_SECONDS
