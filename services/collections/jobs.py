"""Collections' scheduled jobs: the daily strategy run and the contact dispatcher.

``collections_daily`` (beat 08:00; by hand for any date) decides each case's actions for
the business date with the domain strategy: SMS contacts are *queued* for the day's
window, tasks are created at once, stage changes escalate. Idempotent per (case, date,
kind, template): a re-run plans nothing twice. A run for T after missed dates runs each of
them first, in order, each once (``job_runs``), without late contacts; every case whose
overdue bill has no pre-report notice yet gets one on T: the notice SMS, or a letter task
when no own phone is known (``domain/notices.py``, RULES 6.10 and 6.11).

``contact_dispatch`` (every minute 08:00–21:00; by hand with --date and --at) sends the
queued contacts due at the job's instant, each re-checked by the compliance guard just
before it goes out (one due on a missed date is suppressed ``past_date``, except the
notice; a notice SMS handed to the gateway emits ``collection.notice.sent``). Each
contact is its own short transaction, and the gateway call happens between two of them
(never inside one), so a slow provider holds no locks.

Both work in bounded slices (JobResult.more) so each Celery task stays short. This module
is the service's list of jobs, what the worker registers; each lives in its own module:
``daily_strategy`` (with ``day_plan`` and ``report_notices``), ``contact_dispatch``
(with ``contact_guard``), and ``slices`` for what the two share.
"""

from services.collections.contact_dispatch import contact_dispatch, dispatch_worth_fanning_out
from services.collections.daily_strategy import collections_daily

__all__ = ["collections_daily", "contact_dispatch", "dispatch_worth_fanning_out"]
