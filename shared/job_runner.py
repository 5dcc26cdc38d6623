"""Run a job through its service's worker and wait for it, following continuation slices
and, for a partitioned job, every one of its chains.

A job message waits in its queue for as long as no worker takes it, so a caller that
stops waiting should not leave it there to run hours later: ``expires`` makes the first
message void past the waiter's deadline (a worker receiving it then drops it as revoked).
Only that first message carries it: the slices a job queues after its first one are sent
by the worker without an expiry, so a chain once started always runs to its end.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult

from shared.bus.topology import jobs_queue_name


def workers_serving(app: Celery, queue: str, timeout: float = 2.0) -> list[str]:
    """The names of the workers that consume ``queue`` now (those answering within
    ``timeout`` seconds to Celery's remote control ``active_queues``)."""
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    return sorted(name for name, queues in replies.items() if any(q.get("name") == queue for q in queues or []))


def run_job_and_wait(
    app: Celery,
    task: str,
    service: str,
    business_date: str,
    at: str | None,
    timeout: float,
    expires: float | None = None,
) -> dict[str, Any]:
    """Send the task to ``<service>.jobs``, wait for the last slice of every chain, return
    the summary (the chains' last summaries added up when the job fanned out).

    ``expires`` (seconds): the first message is dropped by any worker that would start it
    later than that (the continuations carry no expiry).
    Raises the job's own exception (re-raised by Celery) or TimeoutError.
    """
    deadline = time.monotonic() + timeout
    pending: list[AsyncResult] = [
        app.send_task(
            task, kwargs={"business_date": business_date, "at": at}, queue=jobs_queue_name(service), expires=expires
        )
    ]
    finals: list[dict[str, Any]] = []
    slices = 0
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{task} for {business_date} did not finish within {timeout}s")
        try:
            summary = pending.pop(0).get(timeout=remaining, propagate=True, interval=0.05)
        except CeleryTimeout:
            raise TimeoutError(f"{task} for {business_date} did not finish within {timeout:g}s") from None
        slices += 1
        nxt = summary.pop("continued_as", None) if isinstance(summary, dict) else None
        if not nxt:
            finals.append(summary)
            continue
        pending.extend(AsyncResult(task_id, app=app) for task_id in ([nxt] if isinstance(nxt, str) else nxt))
    merged = merge_chain_summaries(finals)
    merged["slices"] = slices
    return merged


def merge_chain_summaries(finals: list[dict[str, Any]]) -> dict[str, Any]:
    """One chain: its last summary. Several (a partitioned job): the counts added up, the
    rest as the first chain says (job, business date, instant)."""
    if len(finals) == 1:
        return dict(finals[0])
    merged: dict[str, Any] = {}
    for summary in finals:
        for key, value in summary.items():
            if key not in merged:
                merged[key] = value
            elif _is_count(value) and _is_count(merged[key]):
                merged[key] += value
    merged["partitions"] = len(finals)
    return merged


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
