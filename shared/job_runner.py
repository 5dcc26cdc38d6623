"""Run a job through its service's worker and wait for it, following continuation slices."""
from __future__ import annotations

import time
from typing import Any

from celery import Celery
from celery.result import AsyncResult

from shared.bus.topology import jobs_queue_name


def run_job_and_wait(app: Celery, task: str, service: str, business_date: str, at: str | None,
                     timeout: float) -> dict[str, Any]:
    """Send the task to ``<service>.jobs``, wait for the last slice, return its summary.

    Raises the job's own exception (re-raised by Celery) or TimeoutError.
    """
    deadline = time.monotonic() + timeout
    result: AsyncResult = app.send_task(task, kwargs={"business_date": business_date, "at": at},
                                        queue=jobs_queue_name(service))
    slices = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{task} for {business_date} did not finish within {timeout}s")
        summary = result.get(timeout=remaining, propagate=True, interval=0.05)
        slices += 1
        nxt = summary.pop("continued_as", None) if isinstance(summary, dict) else None
        if not nxt:
            summary["slices"] = slices
            return summary
        result = AsyncResult(nxt, app=app)
