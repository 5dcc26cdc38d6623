"""Celery wiring: one app per service, its job queue, and the event-bus bootstep.

Routing follows Celery's own model (a task queue per service, ``<service>.jobs``)
while domain events arrive on the service's ``<service>.events`` queue, consumed
in batches by :class:`EventBusStep`, a worker bootstep that runs the events
consumer and the outbox relay as threads of the worker process.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery, bootsteps, signals
from shared import metrics
from shared.broker import broker_connection, celery_tls_config
from shared.bus import faults
from shared.bus.consumer import ConsumerConfig, EventConsumer
from shared.bus.handling import EventApplier
from shared.bus.kombu_redis import check_kombu_version
from shared.bus.relay import OutboxRelay
from shared.bus.topology import jobs_queue_name
from shared.bus.unrouted import UnroutedWatch
from shared.clock import SystemClock
from shared.db import dispose_engines, engine_for
from shared.job_delivery_renewal import DeliveryRenewalStep
from shared.key_ring import key_ring
from shared.job_timing import (
    JOBS_VISIBILITY_TIMEOUT,
    SLICE_SOFT_TIME_LIMIT,
    SLICE_TIME_LIMIT,
    SOFT_SHUTDOWN_SECONDS,
    jobs_transport_options,
)
from shared.log import get_logger
from shared.lost_job_messages import LostJobWatchStep, RecordingAMQP
from shared.service import ServiceDefinition
from shared.service_gauges import ServiceGauges
from shared.settings import Settings, get_settings
from shared.transient import Backoff, is_transient

log = get_logger(__name__)


def base_celery_config(broker_url: str, settings: Settings | None = None) -> dict[str, Any]:
    """The common configuration; TLS to the broker and the result backend when ``broker_url``
    is ``rediss://`` (``settings``' TLS files, default the environment's)."""
    return {
        "broker_url": broker_url,
        "result_backend": broker_url,
        **celery_tls_config(broker_url, settings),
        "broker_transport_options": jobs_transport_options(),
        "result_backend_transport_options": {"visibility_timeout": JOBS_VISIBILITY_TIMEOUT},
        "broker_connection_retry_on_startup": True,
        # A broker away for any length of time: the worker waits for it, it does not exit.
        "broker_connection_max_retries": None,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "result_expires": 7 * 24 * 3600,
        "timezone": "Asia/Shanghai",
        "enable_utc": True,
        "worker_hijack_root_logger": False,
        "task_track_started": True,
        # shared/job_timing.py: a slice's limits, and a stop that lets slices finish first
        "task_soft_time_limit": SLICE_SOFT_TIME_LIMIT,
        "task_time_limit": SLICE_TIME_LIMIT,
        "worker_soft_shutdown_timeout": SOFT_SHUTDOWN_SECONDS,
        "worker_enable_soft_shutdown_on_idle": False,  # idle: stop at once
        # Task events (received, started, succeeded...) so that Flower and `celery events` show the jobs.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
    }


def job_celery_app(name: str, broker_url: str, settings: Settings | None = None) -> Celery:
    """A Celery app of the system (a service's, the beat's, a command line's): the common
    configuration, and every job message it sends put on record until its task is done
    (``shared/lost_job_messages.py``). ``settings`` (default: the environment's) stay on the
    app as ``baitiao_settings``, for the clients of the broker it opens beside Celery's."""
    settings = settings or get_settings()
    app = Celery(name, amqp=RecordingAMQP)
    app.conf.update(base_celery_config(broker_url, settings))
    app.baitiao_settings = settings
    return app


class RelayLoop:
    """Publishes the outbox continuously; woken early when a batch just committed.

    The database or the broker away: the rows stay unpublished (a row is stamped only once
    the broker has taken it, shared/bus/relay.py) and the loop tries again after a
    jittered pause, doubling up to ``outage_backoff_max_s``, for as long as it takes."""

    def __init__(self, relay: OutboxRelay, poll_s: float, service: str, outage_backoff_max_s: float = 5.0):
        self.relay = relay
        self.poll_s = poll_s
        self.service = service
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.backoff = Backoff(0.25, outage_backoff_max_s)

    def run(self) -> None:
        heartbeat = metrics.Heartbeat(self.service, metrics.RELAY_LOOP)
        while not self.stopping.is_set():
            heartbeat.beat()
            faults.maybe_stall("relay", self.stopping)
            try:
                sent = self.relay.relay_once()
            except Exception as exc:  # noqa: BLE001 - broker or database down: retry soon
                pause = self.backoff.next()
                log.warning(
                    "relay_retry",
                    service=self.service,
                    error=str(exc)[:300],
                    transient=is_transient(exc),
                    backoff_s=round(pause, 2),
                )
                self.relay.reset()
                self.stopping.wait(pause)
                continue
            self.backoff.reset()
            if sent == 0:
                self.wake.wait(self.poll_s)
                self.wake.clear()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()


class EventBusStep(bootsteps.StartStopStep):
    """Runs the service's events consumer and outbox relay inside the Celery worker."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.threads: list[threading.Thread] = []
        self.consumer: EventConsumer | None = None
        self.relay_loop: RelayLoop | None = None
        self.unrouted: UnroutedWatch | None = None

    def start(self, worker: Any) -> None:
        app = worker.app
        definition: ServiceDefinition = app.baitiao_service
        settings: Settings = app.baitiao_settings
        engine = engine_for(settings.db_url(definition.name), settings.sql_echo)
        if definition.on_start:
            definition.on_start(engine)
        url = app.conf.broker_url
        relay = OutboxRelay(
            engine,
            definition.bus.outbox,
            broker_connection(url, settings),
            definition.name,
            signer=key_ring(settings).signer(definition.name),
        )
        self.relay_loop = RelayLoop(relay, settings.outbox_poll_ms / 1000, definition.name)
        applier = EventApplier(
            definition.name,
            engine,
            definition.bus,
            definition.handlers,
            settings.rules(),
            SystemClock(),
            settings.event_max_attempts,
            event_time=settings.clock == "event",
            trust=key_ring(settings),
        )
        config = ConsumerConfig(
            batch_size=settings.event_batch_size,
            batch_wait_s=settings.event_batch_wait_ms / 1000,
            visibility_timeout=settings.visibility_timeout,
        )
        self.consumer = EventConsumer(definition.name, url, applier, config, settings=settings)
        self.consumer.on_committed = self.relay_loop.wake.set
        # A job's events leave as soon as its slice commits, not at the relay's next poll.
        app.baitiao_relay_wake = self.relay_loop.wake.set
        loops = [(self.consumer.run, "events-consumer"), (self.relay_loop.run, "outbox-relay")]
        if definition.watches_unrouted:
            self.unrouted = UnroutedWatch(
                definition.name,
                url,
                engine,
                definition.bus.dead_letters,
                SystemClock(),
                settings.visibility_timeout,
                settings=settings,
            )
            loops.append((self.unrouted.run, "unrouted-watch"))
        for target, name in loops:
            thread = threading.Thread(target=target, name=f"{definition.name}-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)
        if settings.metrics_port:
            metrics.serve_metrics(settings.metrics_port, ServiceGauges.of(definition, engine, url, settings))
        log.info("event_bus_started", service=definition.name, queue=f"{definition.name}.events")

    def terminate(self, worker: Any) -> None:
        """A cold shutdown (SIGTERM under ``REMAP_SIGTERM=SIGQUIT``, SIGQUIT) stops the
        consumer and the relay as a warm one does, so what they hold is put back."""
        self.stop(worker)

    def stop(self, worker: Any) -> None:
        if self.consumer:
            self.consumer.stop()
        if self.relay_loop:
            self.relay_loop.stop()
        if self.unrouted:
            self.unrouted.stop()
        for thread in self.threads:
            thread.join(timeout=10)


def _on_pool_child_start(app: Celery) -> Any:
    """A prefork job process: its own database connections (none inherited across the
    fork), and it publishes its slices' events itself (shared/jobs.py, publish_slice)."""

    def start(**_: Any) -> None:
        dispose_engines(close=False)
        app.baitiao_pool_child = True

    return start


def _on_worker_init(app: Celery) -> Any:
    """Before the pool forks its job processes: a worker serving /metrics gives all its
    processes one private metrics directory (shared/metrics.py, multiprocess mode)."""

    def init(sender: Any = None, **_: Any) -> None:
        port, service = app.baitiao_settings.metrics_port, app.baitiao_service
        if port and getattr(sender, "app", None) is app:
            metrics.use_private_directory(service.name, port)

    return init


def make_service_app(definition: ServiceDefinition, settings: Settings | None = None) -> Celery:
    """The Celery app of one service (its tasks are registered by the service's worker.py)."""
    check_kombu_version()
    settings = settings or get_settings()
    app = job_celery_app(f"baitiao.{definition.name}", settings.resolved_broker_url(), settings)
    app.conf.task_default_queue = jobs_queue_name(definition.name)
    app.baitiao_service = definition
    app.baitiao_settings = settings
    app.steps["worker"].add(EventBusStep)
    app.steps["worker"].add(DeliveryRenewalStep)  # shared/job_delivery_renewal.py
    app.steps["worker"].add(LostJobWatchStep)  # shared/lost_job_messages.py
    signals.worker_process_init.connect(_on_pool_child_start(app), weak=False)  # weak=False keeps it alive
    signals.worker_init.connect(_on_worker_init(app), weak=False)
    return app
