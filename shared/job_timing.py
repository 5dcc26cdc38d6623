"""How long a job slice may run, and how soon a slice or a run held by a dead worker is taken over.

One place for the numbers that only work together (:func:`check_order` checks them when
the module is imported):

1. ``SLICE_SOFT_TIME_LIMIT`` / ``SLICE_TIME_LIMIT``: Celery's soft and hard time limits
   of one job task (one slice). Slices are sized to take seconds; a slice still running
   at the hard limit is stuck, and killing it lets the chain go on from its state.
2. **The job message of a dead worker.** A job message is unacked while its worker holds
   it (acks_late); kombu's Redis transport records it in the ``unacked_index`` sorted set
   with the time it was delivered, and a sweep (run by every live worker's Redis channel
   every ``UNACKED_SWEEP_SECONDS``) puts back on its queue every message whose score is
   older than ``JOBS_VISIBILITY_TIMEOUT``. A live worker re-stamps the score of every
   message it holds every ``DELIVERY_RENEW_SECONDS`` (``shared/job_delivery_renewal.py``),
   so a live slice is never handed out twice however long it runs or waits in the
   worker; the messages of a worker that died stop being re-stamped and are delivered
   again, to a live worker, within ``JOBS_VISIBILITY_TIMEOUT + UNACKED_SWEEP_SECONDS``
   of its last stamp. ``UNACKED_MUTEX_SECONDS`` bounds the wait when the worker died
   during a sweep, holding the sweep's mutex. The re-stamping must come several times
   per visibility timeout, so that a worker paused for a few seconds keeps its messages.
3. **The lease of a dead run.** A business date's run row (``shared/job_runs.py``) may
   be taken over by another run once its holder has not renewed it for
   ``LEASE_SECONDS``. The holder renews it when each slice starts and every
   ``LEASE_RENEW_SECONDS`` while a slice runs, so only a run whose worker died lets it
   go stale, and a new run (``baitiao jobs run`` again, the next beat) takes the date
   over within ``LEASE_SECONDS``.

All three takeovers stay within ``TAKEOVER_SECONDS`` of a kill: a killed worker costs a
short delay, never a stall.

4. **A job message lost in the pop.** kombu's Redis transport pops a job message
   (BRPOP) before it records it as held; a worker killed between the two loses it.
   Every job message is on record until its task is done, and a sweep every
   ``LOST_JOB_SWEEP_SECONDS`` sends again one that is nowhere, once it has been
   nowhere on two sweeps ``LOST_JOB_CONFIRM_SECONDS`` apart
   (``shared/lost_job_messages.py``).

A stop (``docker compose stop``, a rolling restart) sends SIGTERM, which the worker
takes as Celery's cold shutdown (``REMAP_SIGTERM=SIGQUIT``) with its soft timeout:
running slices get ``SOFT_SHUTDOWN_SECONDS`` to finish, then what is left is requeued
at once instead of waiting out the visibility timeout. ``STOP_GRACE_SECONDS``, the compose ``stop_grace_period``, gives that room and
the events consumer's own stop before the container is killed.
"""

from __future__ import annotations

SLICE_SOFT_TIME_LIMIT = 240
SLICE_TIME_LIMIT = 300

JOBS_VISIBILITY_TIMEOUT = 60
DELIVERY_RENEW_SECONDS = 5
UNACKED_SWEEP_SECONDS = 5
UNACKED_MUTEX_SECONDS = 30

LEASE_SECONDS = 90
LEASE_RENEW_SECONDS = 15

LOST_JOB_SWEEP_SECONDS = 5
LOST_JOB_CONFIRM_SECONDS = 5

TAKEOVER_SECONDS = 120

SOFT_SHUTDOWN_SECONDS = 45
STOP_GRACE_SECONDS = 60


def check_order() -> None:
    """Raise if the numbers above stopped keeping their promises."""
    if not SLICE_SOFT_TIME_LIMIT < SLICE_TIME_LIMIT:
        raise ValueError("job timing: the soft time limit must come before the hard one")
    if not 3 * DELIVERY_RENEW_SECONDS <= JOBS_VISIBILITY_TIMEOUT:
        raise ValueError("job timing: a held job message must be re-stamped several times per visibility timeout")
    if not JOBS_VISIBILITY_TIMEOUT + UNACKED_SWEEP_SECONDS + UNACKED_MUTEX_SECONDS < TAKEOVER_SECONDS:
        raise ValueError("job timing: a dead worker's job message must be delivered again within the takeover time")
    if not 3 * LEASE_RENEW_SECONDS <= LEASE_SECONDS < TAKEOVER_SECONDS:
        raise ValueError(
            "job timing: a run's lease must be renewed several times per lease, and go stale within the takeover time"
        )
    if not LOST_JOB_CONFIRM_SECONDS + 2 * LOST_JOB_SWEEP_SECONDS + UNACKED_MUTEX_SECONDS < TAKEOVER_SECONDS:
        raise ValueError("job timing: a lost job message must be sent again within the takeover time")
    if not SOFT_SHUTDOWN_SECONDS < STOP_GRACE_SECONDS:
        raise ValueError("the soft shutdown must end before the stop grace period")


def jobs_transport_options() -> dict[str, int]:
    """kombu Redis transport options of the job messages' connection: the visibility
    timeout, a sweep every ``UNACKED_SWEEP_SECONDS`` (kombu's event loop calls
    ``restore_visible`` every ``unacked_restore_interval`` seconds and scans on every
    ``unacked_restore_throttle``-th call; by default every 10th of every 10 s), and the
    sweep's mutex expiry."""
    return {
        "visibility_timeout": JOBS_VISIBILITY_TIMEOUT,
        "unacked_restore_interval": UNACKED_SWEEP_SECONDS,
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": UNACKED_MUTEX_SECONDS,
    }


check_order()
