"""Prometheus metrics per worker: events handled, failures, dead letters, job durations, outbox lag."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

EVENTS_HANDLED = Counter("baitiao_events_handled_total", "Events applied", ["service", "type"])
EVENTS_DUPLICATE = Counter("baitiao_events_duplicate_total", "Events skipped by the inbox", ["service"])
EVENTS_FAILED = Counter("baitiao_events_failed_total", "Handler failures (before retry)", ["service", "type"])
DEAD_LETTERS = Counter("baitiao_dead_letters_total", "Messages sent to the dead letters", ["service"])
BATCH_SECONDS = Histogram("baitiao_event_batch_seconds", "Time to apply one batch of events", ["service"])
JOB_SECONDS = Histogram(
    "baitiao_job_seconds", "Scheduled job duration", ["job"], buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600)
)
OUTBOX_PUBLISHED = Counter("baitiao_outbox_published_total", "Outbox rows published", ["service"])
OUTBOX_LAG = Gauge("baitiao_outbox_unpublished", "Outbox rows waiting to be published", ["service"])


def serve_metrics(port: int | None) -> None:
    """Expose /metrics on a port when one is configured (docker compose sets it)."""
    if port:
        start_http_server(port)
