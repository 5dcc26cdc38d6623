"""The one beat of the system: the Jobs table of EVENTS.md, sent to each service's queue.

It uses celery-redbeat: the schedule lives in Redis and a lock (renewed at every tick
while the beat lives) makes a second beat wait instead of firing every job twice. A
standby beat polls for the lock every loop interval (a fifth of the lock timeout, at most
30 s): when the beat holding it dies, the lock expires after ``lock_timeout`` seconds and
the standby takes over within ``lock_timeout`` plus one loop interval (72 s with the
default 60 s timeout, the setting ``beat_lock_timeout``), well inside two minutes.
"""

from __future__ import annotations

from celery import Celery
from celery.schedules import crontab

from shared.bus.topology import jobs_queue_name
from shared.celery_app import job_celery_app
from shared.settings import Settings

# job task name, queue's service, when (Asia/Shanghai)
BEAT_SCHEDULE = {
    "statements": ("accounts.statements", "accounts", crontab(minute=10, hour=0)),
    "daily-close": ("accounts.daily_close", "accounts", crontab(minute=30, hour=0)),
    "credit-report": ("accounts.credit_report", "accounts", crontab(minute=0, hour=2, day_of_month=1)),
    "plan-monitor": ("restructuring.plan_monitor", "restructuring", crontab(minute=0, hour=1)),
    "collections-daily": ("collections.daily", "collections", crontab(minute=0, hour=8)),
    "contact-dispatch": ("collections.contact_dispatch", "collections", crontab(minute="*", hour="8-20")),
}


def make_beat_app(broker_url: str, lock_timeout: int = 60, settings: Settings | None = None) -> Celery:
    """The beat's app; over TLS, redbeat's own Redis connection too (``redbeat_redis_use_ssl``,
    set with Celery's by :func:`shared.broker.celery_tls_config`)."""
    app = job_celery_app("baitiao.beat", broker_url, settings)
    app.conf.beat_scheduler = "redbeat.RedBeatScheduler"
    app.conf.redbeat_redis_url = broker_url
    app.conf.redbeat_key_prefix = "baitiao.beat:"
    app.conf.redbeat_lock_timeout = lock_timeout
    app.conf.redbeat_lock_key = "baitiao.beat:lock"
    app.conf.beat_max_loop_interval = beat_loop_seconds(lock_timeout)
    app.conf.beat_schedule = {
        name: {"task": task, "schedule": when, "options": {"queue": jobs_queue_name(service)}}
        for name, (task, service, when) in BEAT_SCHEDULE.items()
    }
    return app


def beat_loop_seconds(lock_timeout: int) -> int:
    """How often the beat ticks (renewing its lock) and a standby tries for the lock."""
    return min(30, max(1, lock_timeout // 5))
