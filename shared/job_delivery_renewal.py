"""A live worker keeps the job messages it holds: their delivery is re-stamped every few seconds.

Job messages are acked late (when the slice returns), so kombu's Redis transport keeps
each one in its ``unacked`` hash, indexed by delivery time in the ``unacked_index``
sorted set, while a worker holds it; every live worker's channel sweeps that index and
puts back on its queue each message delivered longer than the visibility timeout ago
(``shared/job_timing.py``). With a short visibility timeout a dead worker's slice is
soon run again by a live one, but a live slice longer than the timeout would be handed
out a second time too. So a thread of each worker's main process (the process that
receives and acks the messages, with either pool) re-stamps, every
``DELIVERY_RENEW_SECONDS``, the score of every message this worker holds (Celery's
reserved, scheduled and running requests) to the present time. ``ZADD XX`` only updates
entries that are still there: a message acked or swept meanwhile is not brought back.

This leans on two internals of kombu's Redis transport (5.7): the ``unacked_index`` key
(``Channel.unacked_index_key``, under the transport's ``global_keyprefix``) and its
score (the delivery time, in ``time.time()`` seconds, compared by ``QoS.restore_visible``
with ``time() - visibility_timeout``); ``tests/integration/test_job_delivery_renewal.py``
checks both against kombu's own sweep on real Redis.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from celery import bootsteps
from celery.worker import state as worker_state

from shared.job_timing import DELIVERY_RENEW_SECONDS
from shared.log import get_logger

log = get_logger(__name__)


def held_delivery_tags() -> list[str]:
    """The delivery tags of every job message this worker process holds: received and
    waiting for a pool slot, waiting for its countdown, or running."""
    tags = []
    for request in list(worker_state.requests.values()):
        message = getattr(request, "message", None)
        tag = getattr(message, "delivery_tag", None)
        if tag:
            tags.append(str(tag))
    return tags


def restamp(channel: Any, tags: Iterable[str], now: float | None = None) -> int:
    """Set the delivery time of these tags in the channel's ``unacked_index`` to ``now``
    (only for tags still in it); returns how many were renewed."""
    scores = {tag: now if now is not None else time.time() for tag in tags}
    if not scores:
        return 0
    with channel.conn_or_acquire() as client:
        return int(client.zadd(channel.unacked_index_key, scores, xx=True, ch=True) or 0)


def renews_deliveries(channel: Any) -> bool:
    """Only kombu's Redis channel with ack emulation keeps an ``unacked_index``."""
    return bool(getattr(channel, "ack_emulation", False)) and hasattr(channel, "unacked_index_key")


class DeliveryRenewal:
    """The loop: re-stamp what this worker holds every ``every`` seconds until stopped."""

    def __init__(
        self, channel: Any, held: Callable[[], list[str]] = held_delivery_tags, every: float = DELIVERY_RENEW_SECONDS
    ):
        self.channel = channel
        self.held = held
        self.every = every
        self.stopping = threading.Event()

    def renew_once(self) -> int:
        return restamp(self.channel, self.held())

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            try:
                self.renew_once()
            except Exception as exc:  # noqa: BLE001 - broker away: the next round tries again
                log.warning("job_delivery_renewal_retry", error=str(exc)[:300])

    def stop(self) -> None:
        self.stopping.set()


class DeliveryRenewalStep(bootsteps.StartStopStep):
    """Runs :class:`DeliveryRenewal` in the worker's main process, on its own connection."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.connection: Any = None
        self.renewal: DeliveryRenewal | None = None
        self.thread: threading.Thread | None = None

    def start(self, worker: Any) -> None:
        self.connection = worker.app.connection_for_write()
        channel = self.connection.default_channel
        if not renews_deliveries(channel):
            return
        self.renewal = DeliveryRenewal(channel)
        self.thread = threading.Thread(target=self.renewal.run, name="job-delivery-renewal", daemon=True)
        self.thread.start()

    def stop(self, worker: Any) -> None:
        if self.renewal:
            self.renewal.stop()
        if self.thread:
            self.thread.join(timeout=10)
        if self.connection is not None:
            self.connection.release()
            self.connection = None

    def terminate(self, worker: Any) -> None:
        self.stop(worker)
