"""Prometheus metrics per worker: events handled, failures, dead letters, job durations, loop heartbeats.

A worker serving /metrics (``BAITIAO_METRICS_PORT``) runs prometheus_client's multiprocess
mode, so that what its prefork job processes record (``baitiao_job_seconds``) is served by
the worker process too: every process writes its values to files in one directory private
to the worker (:func:`use_private_directory`, emptied at start), and the endpoint merges
them (``MultiProcessCollector``).

prometheus_client chooses where values live (in memory, or those files) from
``PROMETHEUS_MULTIPROC_DIR`` when it is first imported, and every module of the bus
imports this one long before a worker knows it will serve metrics. So the metrics below
are built, and prometheus_client imported, on first use (``__getattr__``); the worker
sets the directory before that (shared/celery_app.py, at ``worker_init``, before the pool
forks its job processes).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

    EVENTS_HANDLED: Counter
    EVENTS_DUPLICATE: Counter
    EVENTS_FAILED: Counter
    DEAD_LETTERS: Counter
    EVENTS_REFUSED: Counter
    BATCH_SECONDS: Histogram
    JOB_SECONDS: Histogram
    OUTBOX_PUBLISHED: Counter
    JOB_MESSAGES_SENT_AGAIN: Counter
    LOOP_HEARTBEAT: Gauge

# The loops of a worker that must keep polling (label ``loop`` of the heartbeat gauge).
CONSUMER_LOOP = "events-consumer"
RELAY_LOOP = "outbox-relay"
WORKER_LOOPS = (CONSUMER_LOOP, RELAY_LOOP)
HEARTBEAT_METRIC = "baitiao_loop_heartbeat_timestamp_seconds"

_built: dict[str, Any] = {}
_build_lock = threading.Lock()


def _build() -> dict[str, Any]:
    from prometheus_client import Counter, Gauge, Histogram

    return {
        "EVENTS_HANDLED": Counter("baitiao_events_handled_total", "Events applied", ["service", "type"]),
        "EVENTS_DUPLICATE": Counter("baitiao_events_duplicate_total", "Events skipped by the inbox", ["service"]),
        "EVENTS_FAILED": Counter("baitiao_events_failed_total", "Handler failures (before retry)", ["service", "type"]),
        "DEAD_LETTERS": Counter("baitiao_dead_letters_total", "Messages sent to the dead letters", ["service"]),
        # Messages not believed (unsigned, forged, bad_signature): dead-lettered, never applied.
        "EVENTS_REFUSED": Counter(
            "baitiao_events_refused_total",
            "Messages refused as unsigned, forged or badly signed",
            ["service", "reason", "type"],
        ),
        "BATCH_SECONDS": Histogram("baitiao_event_batch_seconds", "Time to apply one batch of events", ["service"]),
        # "job_name", not "job": Prometheus gives every scraped series its scrape job's "job" label.
        "JOB_SECONDS": Histogram(
            "baitiao_job_seconds",
            "Scheduled job duration (one slice)",
            ["job_name"],
            buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600),
        ),
        "OUTBOX_PUBLISHED": Counter("baitiao_outbox_published_total", "Outbox rows published", ["service"]),
        "JOB_MESSAGES_SENT_AGAIN": Counter(
            "baitiao_job_messages_sent_again_total",
            "Job messages lost with the worker that popped them, sent again (shared/lost_job_messages.py)",
            ["queue"],
        ),
        # Only the worker process writes it, and its directory starts empty: "max" is the last beat.
        "LOOP_HEARTBEAT": Gauge(
            HEARTBEAT_METRIC,
            "When a worker loop last went round (Unix time)",
            ["service", "loop"],
            multiprocess_mode="max",
        ),
    }


def _defined() -> dict[str, Any]:
    """Every metric above by name, built (and prometheus_client imported) the first time."""
    with _build_lock:
        if not _built:
            _built.update(_build())
            globals().update(_built)
    return _built


def __getattr__(name: str) -> Any:
    """The metrics, built on first use (see the module's docstring)."""
    if name.isupper() and not name.startswith("_") and name in _defined():
        return _built[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Heartbeat:
    """Records that a loop went round: the heartbeat gauge set to now, at most once a second.

    Called on every pass of a loop that may go round hundreds of times a second; between
    two recordings it costs one clock read and one comparison."""

    def __init__(self, service: str, loop: str, every_s: float = 1.0):
        self._gauge = _defined()["LOOP_HEARTBEAT"].labels(service, loop)
        self._every_s = every_s
        self._next = 0.0

    def beat(self) -> None:
        now = time.time()
        if now >= self._next:
            self._gauge.set(now)
            self._next = now + self._every_s


def private_directory(service: str, port: int) -> Path:
    """The worker's own metrics directory: one per service and port, so two workers on one
    host (each with its own port) never merge each other's files."""
    return Path(tempfile.gettempdir()) / f"baitiao-metrics-{service}-{port}"


def use_private_directory(service: str, port: int) -> Path:
    """Empty the worker's metrics directory and make every process of the worker (this one
    and the job processes it forks) record there. Must run before prometheus_client is imported."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError(
            "prometheus_client was imported before the worker set its metrics directory: "
            "the job processes' metrics would be lost"
        )
    path = private_directory(service, port)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


class _ProcessFiles:
    """Every process's recorded metrics (MultiProcessCollector over the directory), named
    (``describe``) so that ``/metrics?name[]=…`` can ask for some alone: the health check
    asks for the heartbeats only, and no scrape-time gauge (no database query) runs for it."""

    def __init__(self, path: str):
        from prometheus_client.multiprocess import MultiProcessCollector

        self._files = MultiProcessCollector(None, path)

    def collect(self) -> Iterable[Metric]:
        merged: Iterable[Metric] = self._files.collect()
        return merged

    def describe(self) -> Iterable[Any]:
        for metric in _defined().values():
            yield from metric.describe()


def serve_metrics(port: int | None, *collectors: "Collector") -> None:
    """Expose /metrics on a port when one is configured (docker compose sets it): every
    process's recorded metrics plus ``collectors`` (gauges computed when scraped)."""
    if not port:
        return
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    registry = REGISTRY
    if directory:
        registry = CollectorRegistry()
        registry.register(_ProcessFiles(directory))
    for collector in collectors:
        registry.register(collector)
    start_http_server(port, registry=registry)
