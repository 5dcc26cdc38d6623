"""How long a job slice may run, and the clocks that must stay longer than it.

One place for four numbers that only work in this order:

1. ``SLICE_SOFT_TIME_LIMIT`` / ``SLICE_TIME_LIMIT``: Celery's soft and hard time limits
   of one job task (one slice). Slices are sized to take seconds; a slice still running
   at the hard limit is stuck, and killing it lets the chain go on from its state.
2. ``LEASE_SECONDS``: a business date's run row (``shared/job_runs.py``) may be taken
   over by another run only once its claim is this old, so a live slice is never
   overtaken by a second run of the same date.
3. ``JOBS_VISIBILITY_TIMEOUT``: kombu gives a job message held by a dead worker to
   another worker after this long; it must exceed the hard limit, or a live slice's
   message would be handed out twice.

A stop (``docker compose stop``, a rolling restart) sends SIGTERM: Celery's warm
shutdown lets running slices finish for ``SOFT_SHUTDOWN_SECONDS`` (Celery's soft
shutdown), then requeues what is left at once instead of leaving it to the visibility
timeout. ``STOP_GRACE_SECONDS``, the compose ``stop_grace_period``, gives that room and
the events consumer's own stop before the container is killed.
"""
from __future__ import annotations

SLICE_SOFT_TIME_LIMIT = 240
SLICE_TIME_LIMIT = 300
LEASE_SECONDS = 600
JOBS_VISIBILITY_TIMEOUT = 900

SOFT_SHUTDOWN_SECONDS = 45
STOP_GRACE_SECONDS = 60


def check_order() -> None:
    """Raise if the numbers above stopped keeping their order."""
    if not SLICE_SOFT_TIME_LIMIT < SLICE_TIME_LIMIT < LEASE_SECONDS < JOBS_VISIBILITY_TIMEOUT:
        raise ValueError("job timing out of order: soft limit < hard limit < lease < visibility timeout")
    if not SOFT_SHUTDOWN_SECONDS < STOP_GRACE_SECONDS:
        raise ValueError("the soft shutdown must end before the stop grace period")


check_order()
