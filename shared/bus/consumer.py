"""The events consumer: drains a service's queue in batches and acks after commit.

It runs as a thread inside the service's Celery worker (see
:mod:`shared.bus.worker_steps`). One kombu connection of its own, with its own
``unacked`` keys and a short visibility timeout: a message delivered to a
worker that dies before acking is restored to the queue after
``visibility_timeout`` seconds by any live consumer of the bus.
"""

from __future__ import annotations

import queue as thread_queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Consumer
from kombu.message import Message

from shared import metrics
from shared.broker import broker_connection
from shared.bus import faults
from shared.bus.handling import BatchOutcome, Delivery, EventApplier
from shared.bus.kombu_redis import BulkTake, ack_many, events_transport_options, sweep_expired
from shared.bus.topology import declare_topology, events_queue
from shared.log import get_logger
from shared.settings import Settings
from shared.transient import Backoff, is_transient

log = get_logger(__name__)


def events_connection(url: str, visibility_timeout: int, service: str, settings: Settings | None = None) -> Connection:
    """A service's events connection (its own unacked keys; TLS when ``url`` is ``rediss://``)."""
    return broker_connection(url, settings, transport_options=events_transport_options(visibility_timeout, service))


@dataclass
class ConsumerConfig:
    batch_size: int = 200
    batch_wait_s: float = 0.025
    # A batch closes as soon as the queue has been empty this long: waiting out
    # batch_wait_s on an empty queue only adds latency to every hop of a chain.
    idle_gap_s: float = 0.002
    # How often the queue is looked at while a batch is being applied (the consumer thread
    # must stay free to ack it, so it does not wait in Redis then).
    poll_s: float = 0.002
    retry_backoff_s: float = 0.5
    retry_backoff_max_s: float = 30.0
    # The longest pause between tries while the database or the broker is away
    # (shared/transient.py): short, so that work resumes within seconds of its return; a
    # refused connection costs next to nothing, and such a wait never counts as an attempt.
    outage_backoff_max_s: float = 5.0
    visibility_timeout: int = 60
    # How often this consumer sweeps the bus for messages whose consumer died (any live
    # consumer restores anyone's, once they are ``visibility_timeout`` old).
    sweep_every_s: float = 1.0


class EventConsumer:
    """Consumes ``<service>.events`` in batches until told to stop."""

    def __init__(
        self,
        service: str,
        broker_url: str,
        applier: EventApplier,
        config: ConsumerConfig,
        queue: Queue | None = None,
        settings: Settings | None = None,
    ):
        self.service = service
        self.queue = queue or events_queue(service)
        self.broker_url = broker_url
        self.settings = settings
        self.applier = applier
        self.config = config
        self.stopping = threading.Event()
        self._pending: list[Delivery] = []
        self._bulk: BulkTake | None = None
        self._retry: list[tuple[float, Delivery]] = []
        # From the applier thread to the consumer thread: ("ack", d), (retry_at, d), or None (batch done).
        self._done: thread_queue.Queue[tuple[Any, Delivery] | None] = thread_queue.Queue()
        # Set by the applier thread when a batch is done: a wait for messages ends at once,
        # so that the batch is acked without waiting for the next message or the timeout.
        self._batch_done = threading.Event()
        # Called after every commit: the worker wakes its outbox relay with it.
        self.on_committed: Callable[[], None] = lambda: None
        self._heartbeat = metrics.Heartbeat(service, metrics.CONSUMER_LOOP)
        # Bumped whenever a connection's consuming ends: a batch the applier thread is still
        # waiting on (the database away) is then left to the broker, which restores it.
        self._generation = 0

    # -- lifecycle ---------------------------------------------------------------------
    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        """Consume until stopped; whenever the broker goes away (or anything else breaks the
        connection), reconnect after a jittered pause capped at ``outage_backoff_max_s``, for
        as long as it takes: the thread never ends before the worker does."""
        backoff = Backoff(self.config.retry_backoff_s, self.config.outage_backoff_max_s)
        while not self.stopping.is_set():
            self._heartbeat.beat()
            try:
                with events_connection(
                    self.broker_url, self.config.visibility_timeout, self.service, self.settings
                ) as conn:
                    # A few quick tries: the backoff below does the long waiting.
                    conn.ensure_connection(max_retries=3, interval_start=0.2, interval_step=0.5, interval_max=2)
                    declare_topology(conn)
                    backoff.reset()
                    self._consume(conn)
            except Exception as exc:  # noqa: BLE001 - broker or database down: wait, retry
                pause = backoff.next()
                log.warning(
                    "consumer_reconnect",
                    service=self.service,
                    error=str(exc)[:300],
                    transient=is_transient(exc),
                    backoff_s=round(pause, 2),
                )
                # Unacked messages are restored by the broker; forget our copies.
                self._pending.clear()
                self._retry.clear()
                self._done = thread_queue.Queue()
                self._wait_beating(pause)

    def _wait_beating(self, seconds: float) -> None:
        """Wait out a reconnect backoff (up to half a minute), still reporting this loop alive."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.stopping.wait(min(left, 1.0)):
            self._heartbeat.beat()

    # -- the loop ----------------------------------------------------------------------
    def _on_message(self, message: Message) -> None:
        self._pending.append(Delivery(body=message.body, message=message))

    def _consume(self, conn: Connection) -> None:
        """Drain and ack on this thread; apply batches on a second one.

        The kombu channel is not thread-safe, so only this thread touches it
        (drain, ack); the applier thread only talks to the database. While one
        batch commits, the next one is being drained: the transport's cost and
        the database's overlap instead of adding up.
        """
        channel = conn.channel()
        self._bulk = BulkTake(channel, self.queue.name) if BulkTake.supported(channel) else None
        with self._kombu_delivery(channel):
            self._consume_on(conn, channel)

    @contextmanager
    def _kombu_delivery(self, channel: Any) -> Iterator[None]:
        """kombu's own ``BRPOP`` consumer, only where :class:`BulkTake` cannot take (a
        transport other than kombu's Redis with ack emulation): it can lose a message to
        a worker killed at the wrong moment (see :class:`BulkTake`)."""
        if self._bulk is not None:
            yield
            return
        prefetch = self.config.batch_size * 3
        with Consumer(channel, queues=[self.queue], on_message=self._on_message, prefetch_count=prefetch, accept=None):
            yield

    def _consume_on(self, conn: Connection, channel: Any) -> None:
        todo: thread_queue.Queue[list[Delivery] | None] = thread_queue.Queue()
        applier = threading.Thread(target=self._apply_loop, args=(todo,), name=f"{self.service}-applier", daemon=True)
        applier.start()
        in_flight = 0
        next_sweep = time.monotonic() + self.config.sweep_every_s
        try:
            while not self.stopping.is_set():
                self._heartbeat.beat()
                faults.maybe_stall("consumer", self.stopping)
                if time.monotonic() >= next_sweep:
                    sweep_expired(channel)
                    next_sweep = time.monotonic() + self.config.sweep_every_s
                in_flight -= self._settle_finished(block=in_flight >= 2)
                if in_flight >= 2:
                    continue
                self._fill_batch(conn, may_block=in_flight == 0)
                batch = self._take_batch()
                if batch:
                    todo.put(batch)
                    in_flight += 1
        finally:
            self._generation += 1  # a batch waiting out an outage gives up: the broker restores it
            todo.put(None)
            applier.join(timeout=30)
            self._ack_committed_on_stop()

    def _ack_committed_on_stop(self) -> None:
        """On a stop, ack what the last batches committed, so the channel's close puts back
        only what was never applied (a broken connection acks nothing: the broker restores
        it all, and the inbox absorbs the redelivery)."""
        if not self.stopping.is_set():
            return
        try:
            self._settle_finished(block=False)
        except Exception as exc:  # noqa: BLE001 - the connection is going away anyway
            log.warning("stop_ack_failed", service=self.service, error=str(exc)[:300])

    def _apply_loop(self, todo: "thread_queue.Queue[list[Delivery] | None]") -> None:
        """Apply batches until told to stop; an unexpected error costs one batch, not the thread
        (its messages stay unacked and the broker restores them after the visibility timeout)."""
        while (batch := todo.get()) is not None:
            try:
                self._process(batch)
            except Exception as exc:  # noqa: BLE001 - the applier thread must outlive any batch
                log.error("batch_abandoned", service=self.service, size=len(batch), error=str(exc)[:300])
            finally:
                self._done.put(None)  # marks the end of one batch
                self._batch_done.set()

    def _settle_finished(self, block: bool) -> int:
        """Ack what the applier committed; returns how many batches finished."""
        self._batch_done.clear()
        finished = 0
        acks: list[Message] = []
        try:
            item = self._done.get(timeout=0.05) if block else self._done.get_nowait()
            while True:
                if item is None:
                    finished += 1
                else:
                    kind, delivery = item
                    if kind == "ack":
                        acks.append(delivery.message)
                    else:
                        self._retry.append((kind, delivery))
                item = self._done.get_nowait()
        except thread_queue.Empty:
            ack_many(acks)
            return finished

    def _fill_batch(self, conn: Connection, may_block: bool) -> None:
        """Take what the queue holds, up to a batch: wait at most ``batch_wait_s`` in all,
        and stop early once the queue has been empty for ``idle_gap_s``.

        A backed-up queue fills whole batches (the database's fixed cost per
        commit is shared by many events); a quiet one hands its few messages on
        at once instead of waiting for company that is not coming. ``may_block``:
        no batch is being applied, so nothing waits for this thread to ack it.
        """
        deadline = time.monotonic() + self.config.batch_wait_s
        while len(self._pending) < self.config.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            timeout = min(remaining, self.config.idle_gap_s) if self._pending else remaining
            limit = self.config.batch_size - len(self._pending)
            if not self._receive(conn, limit, timeout, block=may_block and not self._pending):
                return

    def _receive(self, conn: Connection, limit: int, timeout: float, block: bool) -> bool:
        """Add up to ``limit`` messages to the batch, waiting at most about ``timeout`` for
        the first; False when none came (or a batch finished: it is to be acked first).

        ``block``: wait in Redis (``BulkTake.wait``), which answers the moment a message
        arrives but times out only on Redis's clock (a tenth of a second at its default
        ``hz``). Otherwise poll every ``poll_s``, waking as soon as a batch is done.
        """
        if self._bulk is None:
            try:
                conn.drain_events(timeout=timeout)
            except (socket.timeout, TimeoutError):
                return False
            return True
        if block:
            taken = self._bulk.wait(limit, timeout)
        else:
            deadline = time.monotonic() + timeout
            while not (taken := self._bulk.take(limit)):
                left = deadline - time.monotonic()
                if left <= 0 or self._batch_done.wait(min(left, self.config.poll_s)):
                    break
        for message in taken:
            self._on_message(message)
        return bool(taken)

    def _take_batch(self) -> list[Delivery]:
        now = time.monotonic()
        due = [d for when, d in self._retry if when <= now]
        self._retry = [(when, d) for when, d in self._retry if when > now]
        batch = due + self._pending
        self._pending = []
        return batch

    def _process(self, batch: list[Delivery]) -> None:
        """Apply a batch; on repeated failure isolate the culprit one message at a time.

        A transient fault (shared/transient.py: the database away, a deadlock) says nothing
        about the batch: it is tried again whole, after a jittered pause, for as long as the
        outage lasts, and never counts. Only a batch that keeps failing for another reason
        is split up to find its culprit."""
        started = time.perf_counter()
        generation = self._generation
        failures = 0
        outage = Backoff(self.config.retry_backoff_s, self.config.outage_backoff_max_s)
        while True:
            try:
                outcome = self.applier.apply_batch(batch)
            except Exception as exc:  # noqa: BLE001 - transient (or a poison message): retry
                transient = is_transient(exc)
                failures += 0 if transient else 1
                log.warning(
                    "batch_retry", service=self.service, size=len(batch), transient=transient, error=str(exc)[:300]
                )
                if failures >= 3:
                    break
                pause = outage.next() if transient else self.config.retry_backoff_s * 2 ** (failures - 1)
                if self._pause(pause, generation):
                    return  # stopping, or the connection is gone: the broker restores the batch
                continue
            metrics.BATCH_SECONDS.labels(self.service).observe(time.perf_counter() - started)
            self._settle(outcome)
            return
        for delivery in batch:
            self._process_single(delivery, generation)

    def _process_single(self, delivery: Delivery, generation: int | None = None) -> None:
        """One message alone, retried with capped backoff; dead-lettered once it is the culprit.

        Only its own failures count towards ``max_attempts``: while a transient fault lasts
        it waits (jittered, capped pauses) without counting, so an outage of any length
        dead-letters nothing."""
        generation = self._generation if generation is None else generation
        backoff = Backoff(self.config.retry_backoff_s, self.config.retry_backoff_max_s)
        outage = Backoff(self.config.retry_backoff_s, self.config.outage_backoff_max_s)
        while not self.stopping.is_set() and self._generation == generation:
            try:
                if delivery.attempts >= self.applier.max_attempts:
                    self.applier.dead_letter_now(delivery, f"failed {delivery.attempts} times: {delivery.last_error}")
                    self._done.put(("ack", delivery))
                    return
                self._settle(self.applier.apply_batch([delivery]))
                return
            except Exception as exc:  # noqa: BLE001 - its own failure is counted; an outage is not
                if is_transient(exc):
                    log.warning(
                        "message_waits_out_fault",
                        service=self.service,
                        attempts=delivery.attempts,
                        error=f"{type(exc).__name__}: {exc}"[:300],
                    )
                    if self._pause(outage.next(), generation):
                        return
                    continue
                outage.reset()
                delivery.attempts += 1
                delivery.last_error = f"{type(exc).__name__}: {exc}"[:1000]
                log.warning(
                    "message_retry", service=self.service, attempts=delivery.attempts, error=delivery.last_error[:300]
                )
                if self._pause(backoff.next(), generation):
                    return

    def _pause(self, seconds: float, generation: int) -> bool:
        """Wait ``seconds``; True (give up the batch) once the worker stops or the connection
        the batch came on is gone (its messages are unacked: the broker restores them)."""
        end = time.monotonic() + seconds
        while not self.stopping.is_set() and self._generation == generation:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return False
            self.stopping.wait(min(remaining, 0.25))
        return True

    def _settle(self, outcome: BatchOutcome) -> None:
        """Ack what the committed transaction settled; schedule the failures for later."""
        self.on_committed()
        for delivery in outcome.ack:
            self._done.put(("ack", delivery))
        for delivery in outcome.retry:
            delay = min(self.config.retry_backoff_s * 2 ** (delivery.attempts - 1), self.config.retry_backoff_max_s)
            self._done.put((time.monotonic() + delay, delivery))
