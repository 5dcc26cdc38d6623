"""Simulated days through the real system, phase by phase, as beat would run them.

A day T: statements (00:10), daily close (00:30), plan monitor (01:00), credit report
(02:00 on the 1st), collections' daily run (08:00) and the send dispatcher (08:00),
then the customers' morning (collector outcomes, purchases, repayments, plan
requests), their midday (offer acceptances), and two more dispatcher runs (13:00,
20:30). Jobs go through each service's own worker and queue (``run_job_and_wait``);
customers' events go out in bulk per phase. Before every phase that could see them,
the driver waits for quiescence, so each phase sees all the consequences of the one
before: that, and decisions drawn from the seed, is what makes two runs give the same
numbers. (It does not wait between two jobs of one service that reads only its own
database, such as the statements and the close: nothing in flight can change them.)
"""

from __future__ import annotations

import calendar
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any


from baitiao import registry
from baitiao.simulation.behaviour import Mix, Portfolio
from baitiao.simulation.environment import RunEnvironment, WorkerProcesses, fresh_environment, stop_embedded
from baitiao.simulation.faults import KillDrill, KillPlan
from baitiao.simulation.tally import Tally
from baitiao.simulation.wire import Observer, OutgoingEvent, Publisher, Quiescence, prepare_bus
from shared.broker import broker_client, broker_connection
from shared.bus.topology import jobs_queue_name
from shared.celery_app import job_celery_app
from shared.db import make_engine
from shared.job_runner import run_job_and_wait
from shared.job_timing import TAKEOVER_SECONDS
from shared.key_ring import key_ring
from shared.settings import SERVICES, Settings

JOB_TIMEOUT_S = 900.0
# In a fault drill a slice held by a killed worker runs again within TAKEOVER_SECONDS; a job
# not done after twice that was lost, and the run says so instead of waiting out the hour.
JOB_TIMEOUT_UNDER_KILLS_S = 2.0 * TAKEOVER_SECONDS
CELERY_UNACKED_KEY = "unacked"  # kombu's default: the job messages' (Celery's) held deliveries


DISPATCH_TIMES = ("08:00", "13:00", "20:30")


class JobLost(RuntimeError):
    """A job the driver waits on never finished (its message is nowhere to be run)."""


@dataclass(frozen=True)
class SimulationConfig:
    accounts: int = 2000
    days: int = 180
    seed: int = 1
    out_dir: Path = Path("simulation-out")
    start_date: date = date(2026, 1, 1)
    mix: Mix = field(default_factory=lambda: Mix.load(None))
    use_running_workers: bool = False
    worker_concurrency: int = 2
    workers_per_service: int = 1
    kills: KillPlan | None = None  # a fault drill: SIGKILL a worker every so often (faults.py)


@dataclass
class Timings:
    """Where the wall time went (seconds), to say which phase is the bottleneck."""

    phases: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    started: float = field(default_factory=time.perf_counter)
    startup_s: float = 0.0
    total_s: float = 0.0

    def add(self, name: str, seconds: float) -> None:
        self.phases[name] += seconds


@dataclass
class SimulationRun:
    config: SimulationConfig
    run: RunEnvironment
    portfolio: Portfolio
    tally: Tally
    timings: Timings
    published: int = 0
    observed: int = 0
    job_summaries: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    drill: KillDrill | None = None
    redelivered: int = 0  # events seen again under an event_id already seen (at-least-once delivery)


ProgressHook = Callable[[int, int, int], None]  # days done, events so far, total days


def one_per_identity(events: list[OutgoingEvent], identity_of: dict[str, str]) -> list[list[OutgoingEvent]]:
    """The phase's events in waves: each identity's n-th event (in time order) in wave n.

    Two workers of a service take two messages of one account at the same moment and
    apply them in whichever order their transactions meet: a purchase and a repayment
    of one line, or two purchases of one identity, sent together can be decided either
    way round (one worker applies them in the order sent). A customer's checkout waits
    for its decision before the next, so the simulation does not send one identity's
    events faster than they are answered when it runs several workers a service, and
    both ways give the results of one worker."""
    waves: list[list[OutgoingEvent]] = []
    seen: Counter[str] = Counter()
    for event in events:
        account = str(event.payload.get("account_id", event.aggregate_id))
        key = identity_of.get(account, account)
        if seen[key] == len(waves):
            waves.append([])
        waves[seen[key]].append(event)
        seen[key] += 1
    return waves


class Driver:
    """Owns the run's connections, the workers and the day loop."""

    def __init__(self, config: SimulationConfig):
        self.config = config
        self.timings = Timings()
        self.run_env = fresh_environment(config.out_dir.resolve(), config.use_running_workers)
        self.workers = WorkerProcesses(self.run_env, config.worker_concurrency, config.workers_per_service)
        self.drill = KillDrill(self.workers, config.kills) if config.kills else None
        url = self.run_env.broker_url
        self.redis = broker_client(url)
        self.connection = broker_connection(url)
        self.connection.ensure_connection(max_retries=5)
        prepare_bus(self.connection)
        self.observer = Observer(self.connection, self.redis, f"simulator.observer.s{config.seed}")
        # The outside systems' keys: the ones the workers verify with (the configured ring,
        # or the one generated in the run's data dir that they share).
        ring = key_ring(Settings(data_dir=self.run_env.data_dir))
        self.publisher = Publisher(self.connection, config.seed, ring)
        self.engines = {s: make_engine(u) for s, u in self.run_env.db_urls.items()}
        self.quiescence = Quiescence(self.redis, self.engines, SERVICES, check_alive=self.workers.check_alive)
        self.celery = job_celery_app("baitiao.simulator", url)
        self.jobs = registry.all_jobs()
        self.portfolio = Portfolio(config.accounts, config.seed, config.mix, config.start_date)
        self.tally = Tally(config.accounts, account_ids=[c.account_id for c in self.portfolio.customers])
        self.identity_of = {c.account_id: c.identity_hash for c in self.portfolio.customers}
        self.seen_event_ids: set[str] = set()
        self.result = SimulationRun(config, self.run_env, self.portfolio, self.tally, self.timings, drill=self.drill)

    # -- the pieces of a day --------------------------------------------------------------
    def _settle(self, phase: str) -> None:
        started = time.perf_counter()
        self.quiescence.wait()
        events = self._first_deliveries(self.observer.drain())
        self.result.observed += len(events)
        self.tally.observe(events)
        self.portfolio.observe(events)
        self.timings.add(f"settle:{phase}", time.perf_counter() - started)

    def _first_deliveries(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each event once, as every consumer takes it (its inbox): delivery is at least once,
        and a relay killed between publishing a batch and marking it sent publishes it again
        under the same ``event_id``. The repeats are counted apart (the run's environment)."""
        first = []
        for event in events:
            if event["event_id"] in self.seen_event_ids:
                self.result.redelivered += 1
                continue
            self.seen_event_ids.add(event["event_id"])
            first.append(event)
        return first

    def _job(self, name: str, day: date, at: str, settle: bool = True) -> None:
        """Run one job to its end; ``settle=False`` when the next phase is a job of the same
        service that reads only its own database (what it emitted is observed with the next)."""
        service, spec = self.jobs[name]
        started = time.perf_counter()
        timeout = JOB_TIMEOUT_UNDER_KILLS_S if self.drill else JOB_TIMEOUT_S
        sent_at = self.drill.elapsed() if self.drill else None
        try:
            summary = run_job_and_wait(self.celery, spec.task, service, day.isoformat(), at, timeout)
        except TimeoutError:
            what = f"{name} for {day} at {at} (sent at drill second {sent_at}) not done within {timeout:g} s"
            raise JobLost(self._where_jobs_are(service, what)) from None
        # the dispatcher's three runs a day are timed apart: the 08:00 one sends nearly everything
        phase = f"job:{name}@{at}" if name == "contact-dispatch" else f"job:{name}"
        self.timings.add(phase, time.perf_counter() - started)
        if name in ("daily-close", "statements", "credit-report", "plan-monitor", "collections-daily"):
            self.result.job_summaries[name].append({k: v for k, v in summary.items() if k != "duration_ms"})
        if settle:
            self._settle(name)

    def _where_jobs_are(self, service: str, what: str) -> str:
        """A job that never finished, and what the broker still holds of the service's jobs:
        nothing queued and nothing held means its message is gone."""
        queued = self.redis.llen(jobs_queue_name(service))
        held = self.redis.hlen(CELERY_UNACKED_KEY)
        last_kill = asdict(self.drill.kills[-1]) if self.drill and self.drill.kills else None
        return (
            f"{what}; {queued} message(s) queued on {jobs_queue_name(service)}, {held} job message(s) "
            f"held unacked; last kill {last_kill}"
        )

    def _customers(self, name: str, events: list[OutgoingEvent]) -> None:
        """Publish a phase's events and settle. With several workers per service, in waves
        of at most one event per identity (see :func:`one_per_identity`)."""
        if not events:
            return
        waves = [events]
        if self.config.workers_per_service > 1:
            waves = one_per_identity(events, self.identity_of)
        for wave in waves:
            started = time.perf_counter()
            self.result.published += self.publisher.publish_all(wave)
            self.timings.add(f"publish:{name}", time.perf_counter() - started)
            self._settle(name)

    def simulate_day(self, day: date) -> None:
        self._job("statements", day, "00:10", settle=False)  # the close reads accounts' own rows
        self._job("daily-close", day, "00:30")
        self._job("plan-monitor", day, "01:00")
        if day.day == 1:
            self._job("credit-report", day, "02:00")
        self._job("collections-daily", day, "08:00")
        self._job("contact-dispatch", day, DISPATCH_TIMES[0])
        self._customers("customers-morning", self.portfolio.morning(day))
        self._customers("customers-midday", self.portfolio.midday(day))
        self._job("contact-dispatch", day, DISPATCH_TIMES[1], settle=False)  # nobody acts until tomorrow
        self._job("contact-dispatch", day, DISPATCH_TIMES[2])
        last = day.day == calendar.monthrange(day.year, day.month)[1]
        self.tally.close_day(day, last_of_month=last or day == self.last_day)

    @property
    def last_day(self) -> date:
        return self.config.start_date + timedelta(days=self.config.days - 1)

    # -- the run ----------------------------------------------------------------------------
    def run(self, progress: ProgressHook = lambda done, events, total: None) -> SimulationRun:
        try:
            if not self.config.use_running_workers:
                self.workers.start()
                if self.drill:
                    self.drill.start()
            self._customers("grants", self.portfolio.grants())
            self.timings.startup_s = time.perf_counter() - self.timings.started
            progress(0, 0, self.config.days)
            for n in range(self.config.days):
                self.simulate_day(self.config.start_date + timedelta(days=n))
                progress(n + 1, self.result.published + self.result.observed, self.config.days)
            self.timings.total_s = time.perf_counter() - self.timings.started
            return self.result
        finally:
            self.close()

    def close(self) -> None:
        if self.drill:
            self.drill.stop()
        try:
            self.observer.delete(self.connection)
        except Exception:  # noqa: BLE001 - closing down; the broker may be gone
            pass
        self.workers.stop()
        self.connection.release()
        if not self.config.use_running_workers:
            stop_embedded(self.run_env)
