"""``baitiao bench night``: a lender's whole night and morning through the real workers.

In one run, on PostgreSQL and Redis:

1. three fresh databases, the portfolio written straight into them with ``generate_series``
   (default 1,000,000 accounts, 10% overdue by 1 to 120 days yesterday, so every stage of
   collections holds cases), as the night before left it: accounts' bills, levels and
   marks; collections' customers, cases (stage by DPD) and bills; restructuring's account
   and bill views, and a share of active installment plans (2% by default) in all three
   (:mod:`baitiao.bench_night_portfolio`, :mod:`baitiao.bench_night_plans`);
2. the baseline: the daily close's hand-written SQL (``bench close``'s), on the same
   accounts database, rolled back;
3. the real workers started, then the night's jobs sent as beat sends them, each run to
   its end: statements (00:10; bills only on a statement day), the daily close (00:30), the
   plan monitor (01:00), on the 1st the credit report (02:00), collections-daily (08:00)
   and the first contact dispatch (08:00);
   after each, the time until every service had applied what it caused (queues empty,
   nothing unacked, outboxes relayed), and how long each service took to get there;
4. each worker's peak memory (``VmHWM`` of every process of its tree, Linux's
   ``/proc``), and the whole night's ratio to the baseline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, create_engine, text

from baitiao.bench_close import BUSINESS_DATE, run_baseline
from shared.broker import broker_client

SERVICES = ("accounts", "collections", "restructuring")
# (job, the time of day beat sends it at), in beat's order (shared/beat.py)
NIGHT = (
    ("statements", "00:10"),
    ("daily-close", "00:30"),
    ("plan-monitor", "01:00"),
    ("collections-daily", "08:00"),
    ("contact-dispatch", "08:00"),
)
FIRST_OF_MONTH = ("credit-report", "02:00")  # beat sends it on the 1st only


def night_jobs(business_date: date) -> tuple[tuple[str, str], ...]:
    """What beat sends the night of ``business_date``, in its order."""
    if business_date.day != 1:
        return NIGHT
    return (*NIGHT[:3], FIRST_OF_MONTH, *NIGHT[3:])


JOB_TIMEOUT_S = 3600.0
SETTLE_TIMEOUT_S = 3600.0


@dataclass
class Settling:
    """Watches the three services after a job until each has nothing left, and says when
    each got there (a service quiet once may get work again from another's events: the
    last time it became quiet counts)."""

    client: redis.Redis
    engines: dict[str, Engine]
    poll_s: float = 0.05
    quiet_at: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from baitiao.simulation.wire import Quiescence

        # one service's queues, landing list, unacked hash and outbox: the simulation's check
        self._watches = {s: Quiescence(self.client, {s: self.engines[s]}, (s,)) for s in SERVICES}

    def busy(self, service: str) -> bool:
        return self._watches[service].busy() is not None

    def wait(self, started: float, check_alive: Callable[[], None]) -> dict[str, float]:
        """Seconds from ``started`` until each service was last seen becoming quiet; returns
        once all three are quiet on two looks in a row."""
        self.quiet_at = {}
        quiet_looks = 0
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while quiet_looks < 2:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the services did not settle within {SETTLE_TIMEOUT_S:g} s")
            check_alive()
            now = time.monotonic()
            states = {service: self.busy(service) for service in SERVICES}
            for service, busy in states.items():
                if busy:
                    self.quiet_at.pop(service, None)
                else:
                    self.quiet_at.setdefault(service, now)
            quiet_looks = quiet_looks + 1 if not any(states.values()) else 0
            time.sleep(self.poll_s)
        return {service: round(self.quiet_at[service] - started, 2) for service in SERVICES}


def outbox_counts(engines: dict[str, Engine]) -> dict[str, int]:
    counts = {}
    for service, engine in engines.items():
        with engine.connect() as conn:
            counts[service] = int(conn.scalar(text("SELECT count(*) FROM outbox")) or 0)
    return counts


def peak_memory(pid: int) -> dict[str, Any]:
    """Peak resident memory (``VmHWM``) of a process and of each of its descendants."""
    peaks = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) * 1024)
        todo += [int(child) for child in children]
    return {
        "processes": len(peaks),
        "largest_process_mib": round(max(peaks, default=0) / 2**20, 1),
        "sum_of_peaks_mib": round(sum(peaks) / 2**20, 1),
    }


def refuse_busy_broker(client: redis.Redis) -> None:
    """The night's workers would take whatever the services' queues hold: the bench runs on
    a Redis database whose queues are empty (it flushes nothing itself)."""
    from shared.bus.kombu_redis import waiting_lists
    from shared.bus.topology import events_queue_name, jobs_queue_name

    keys = [k for s in SERVICES for q in (events_queue_name(s), jobs_queue_name(s)) for k in waiting_lists(q)]
    held = {key: n for key, n in zip(keys, [client.llen(key) for key in keys]) if n}
    if held:
        raise RuntimeError(
            f"the broker's queues hold messages ({', '.join(sorted(held))}): "
            "point BAITIAO_BROKER_URL at an empty Redis database"
        )


def wait_for_workers(celery: Any, expected: int, timeout_s: float = 120.0) -> float:
    """Wait until ``expected`` workers answer a ping (started, consuming their job queues),
    so the first job's time is the job's, not the workers' start; returns the seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        answers = celery.control.ping(timeout=1.0) or []
        if len(answers) >= expected:
            return time.monotonic() - started
    raise TimeoutError(f"fewer than {expected} workers answered within {timeout_s:g} s")


def run_night(
    celery: Any, settling: Settling, engines: dict[str, Engine], business_date: date, check_alive: Callable[[], None]
) -> list[dict[str, Any]]:
    """The night's jobs in beat's order, each to its end and then settled; a row per job."""
    from baitiao import registry
    from shared.job_runner import run_job_and_wait

    jobs = registry.all_jobs()
    rows = []
    for name, at in night_jobs(business_date):
        service, spec = jobs[name]
        before = outbox_counts(engines)
        started = time.monotonic()
        summary = run_job_and_wait(celery, spec.task, service, business_date.isoformat(), at, JOB_TIMEOUT_S)
        job_s = time.monotonic() - started
        settled = settling.wait(started, check_alive)
        after = outbox_counts(engines)
        rows.append(
            {
                "job": name,
                "at": at,
                "job_s": round(job_s, 2),
                "settled_s": round(max(settled.values()), 2),
                "settle_after_job_s": round(max(settled.values()) - job_s, 2),
                "each_service_quiet_s": settled,
                "events_emitted": {s: after[s] - before[s] for s in SERVICES},
                "summary": {k: v for k, v in summary.items() if k != "duration_ms"},
            }
        )
    return rows


def run_night_benchmark(
    broker_url: str,
    pg_url: str,
    accounts: int = 1_000_000,
    overdue_share: float = 0.10,
    dpd_spread: int = 120,
    plan_share: float = 0.02,
    business_date: date = BUSINESS_DATE,
    out_dir: Path = Path(".baitiao/bench-night"),
    keep: bool = False,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """The whole benchmark (see the module's docstring); returns its figures."""
    from baitiao.bench_checkout import migrated_databases, start_workers
    from baitiao.bench_night_portfolio import seed_portfolio
    from baitiao.simulation.environment import drop_databases
    from shared.celery_app import job_celery_app

    refuse_busy_broker(broker_client(broker_url))
    run = uuid.uuid4().hex[:8]
    prefix = f"bench_night_{run}"
    db_urls = migrated_databases(pg_url, prefix)
    engines = {s: create_engine(u) for s, u in db_urls.items()}
    environment = None
    workers = None
    try:
        progress(f"writing the portfolio: {accounts:,} accounts")
        started = time.monotonic()
        overdue, plans = seed_portfolio(engines, accounts, overdue_share, dpd_spread, plan_share, business_date)
        portfolio_s = time.monotonic() - started
        progress("the close's SQL baseline")
        baseline_s = run_baseline(engines["accounts"], business_date)
        progress("starting the workers")
        environment, workers = start_workers(db_urls, broker_url, out_dir, prefix)
        celery = job_celery_app("baitiao.bench.night", broker_url)
        start_s = wait_for_workers(celery, len(SERVICES))
        settling = Settling(broker_client(broker_url), engines)
        settling.wait(time.monotonic(), workers.check_alive)
        progress("the night")
        night_started = time.monotonic()
        rows = run_night(celery, settling, engines, business_date, workers.check_alive)
        night_s = time.monotonic() - night_started
        memory = {service: [peak_memory(p.pid) for p in procs] for service, procs in workers.procs.items()}
    finally:
        if workers is not None:
            workers.stop()
        for engine in engines.values():
            engine.dispose()
        if environment is not None and not keep:
            drop_databases(environment)
    largest = max(m["largest_process_mib"] for tree in memory.values() for m in tree)
    return {
        "accounts": accounts,
        "overdue_accounts": overdue,
        "dpd_spread": dpd_spread,
        "active_plans": plans,
        "business_date": business_date.isoformat(),
        "portfolio_build_s": round(portfolio_s, 1),
        "workers_start_s": round(start_s, 1),
        "baseline_close_sql_s": round(baseline_s, 3),
        "night_s": round(night_s, 2),
        "ratio_night_to_close_baseline": round(night_s / baseline_s, 1),
        "jobs": rows,
        "peak_memory": memory,
        "largest_process_mib": largest,
    }
