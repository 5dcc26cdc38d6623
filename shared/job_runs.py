"""A scheduled job's runs per business date, and the lease that keeps two runs of one date apart.

Every service keeps a ``job_runs`` table of its own (database per service); the
columns and the lease logic are shared here. A date's row is claimed by a run
token (carried in the slices' state, so a slice delivered again after its worker died
is the same run): another run finding it claimed and fresh refuses with ``LeaseHeld``.
The holder renews its claim (``started_at`` is the time of the latest claim or renewal)
each time a slice acquires it, and every ``LEASE_RENEW_SECONDS`` while a slice runs
(:func:`leases_kept`, around every slice in ``shared/jobs.py``); a claim not renewed for
``LEASE_SECONDS`` (its worker died) may be taken over by another run, which is safe
because every job is idempotent for its date (``shared/job_timing.py``).

While a date runs, its row also holds the date's progress, written by each unit of work
(a chunk of accounts, a slice of cases) in the unit's own transaction (:meth:`JobLease.record`),
and read, with the row locked, at the start of the next (:meth:`JobLease.resume`). A worker
killed after a unit committed but before its task was acknowledged has its slice delivered
again with the state the slice started from, and the slice may already have queued its
continuation: both then go on from the committed progress rather than from their message,
so no unit is done twice and no unit's figures are lost from the summary (idempotent work
done again would count nothing the second time).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import Date, DateTime, Engine, String, Text, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.db import rows_changed
from shared.job_timing import LEASE_RENEW_SECONDS, LEASE_SECONDS
from shared.log import get_logger

log = get_logger(__name__)


class JobRunColumns:
    """Declarative mixin: ``class JobRun(JobRunColumns, Base): __tablename__ = "job_runs"``."""

    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # running | done
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # latest claim or renewal
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the run holding the lease

    if TYPE_CHECKING:
        # A service's JobRun takes its constructor from its declarative base: the columns
        # as keyword arguments.
        def __init__(self, **columns: Any) -> None: ...


class LeaseHeld(RuntimeError):
    """Another run holds this job's date."""


def last_done(session: Session, model: type[JobRunColumns], job: str, other_than: str | None = None) -> date | None:
    """The latest business date this job finished; ``other_than``: by a run other than that
    one (a run's first slice delivered again finds the dates it began with, as it first did)."""
    query = select(func.max(model.business_date)).where(model.job == job, model.status == "done")
    if other_than is not None:
        query = query.where(model.owner.is_distinct_from(other_than))
    return session.scalar(query)


def done_on(session: Session, model: type[JobRunColumns], job: str, day: date, other_than: str | None = None) -> bool:
    """Whether this job already finished for this business date (``other_than``: by a run
    other than that one)."""
    run = session.get(model, (job, day))
    return run is not None and run.status == "done" and (other_than is None or run.owner != other_than)


def _aware(instant: datetime) -> datetime:
    return instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)


# The key of a date's progress that counts the units of work committed for it.
UNITS = "units"


@dataclass(frozen=True)
class Standing:
    """Where a date's run stands (:meth:`JobLease.resume`): ``done`` with its summary as
    ``progress``, or not done with the progress to go on from."""

    done: bool
    progress: dict[str, Any]


class JobLease:
    def __init__(self, model: type[JobRunColumns], job: str, owner: str):
        self.model = model
        self.job = job
        self.owner = owner

    def acquire(self, session: Session, day: date, now: datetime) -> None:
        run = session.get(self.model, (self.job, day), with_for_update=True)
        if run is None:
            session.add(
                self.model(
                    job=self.job,
                    business_date=day,
                    status="running",
                    started_at=now,
                    owner=self.owner,
                )
            )
            session.flush()
            _keep(self, day)
            return
        if run.status == "done":
            return
        if run.owner != self.owner and _aware(now) - _aware(run.started_at) < timedelta(seconds=LEASE_SECONDS):
            raise LeaseHeld(f"{self.job} for {day} is already running (run {run.owner})")
        run.owner, run.started_at, run.status = self.owner, now, "running"
        _keep(self, day)

    def renew(self, session: Session, day: date, now: datetime) -> bool:
        """Stamp the claim as fresh if this run still holds the date and it is not done."""
        result = session.execute(
            update(self.model)
            .where(
                self.model.job == self.job,
                self.model.business_date == day,
                self.model.owner == self.owner,
                self.model.status == "running",
            )
            .values(started_at=now)
        )
        return bool(rows_changed(result))

    def resume(self, session: Session, day: date, carried: dict[str, Any]) -> Standing:
        """Lock the date's row until the transaction ends and say where the date stands: done
        by this run (with the summary :meth:`finish` stored), or the progress to go on from:
        the one the latest unit committed when it is ahead of ``carried`` (the progress this
        delivery's message brought), else ``carried``. A date another run finished is run
        again from ``carried`` (a job that lets an operator run a done date by hand)."""
        run = session.get(self.model, (self.job, day), with_for_update=True, populate_existing=True)
        if run is None or run.summary is None:
            return Standing(done=False, progress=carried)
        stored: dict[str, Any] = json.loads(run.summary)
        if run.status == "done":
            mine = run.owner == self.owner
            return Standing(done=mine, progress=stored if mine else carried)
        ahead = int(stored.get(UNITS, 0)) > int(carried.get(UNITS, 0))
        return Standing(done=False, progress=stored if ahead else carried)

    def record(self, session: Session, day: date, progress: dict[str, Any]) -> dict[str, Any]:
        """Store the date's progress after the unit of work done in this transaction (in the
        row :meth:`resume` locked); return it, counting that unit."""
        progress = {**progress, UNITS: int(progress.get(UNITS, 0)) + 1}
        session.execute(
            update(self.model)
            .where(self.model.job == self.job, self.model.business_date == day, self.model.status == "running")
            .values(summary=json.dumps(progress, default=str))
        )
        return progress

    def finish(self, session: Session, day: date, summary: dict[str, Any], now: datetime | None = None) -> None:
        """Mark the date done with its summary."""
        run = session.get(self.model, (self.job, day), with_for_update=True, populate_existing=True)
        if run is None:
            raise LeaseHeld(f"{self.job} for {day} lost its run row")
        run.status = "done"
        run.finished_at = now or run.started_at
        run.summary = json.dumps(summary, default=str)


@dataclass
class LeaseKeeper:
    """Renews, every ``every`` seconds until the slice ends, the leases the slice acquired.

    A slice renews its run's lease when it acquires it; a slice longer than the lease
    would still let it go stale while it runs, so a thread (started with the first lease
    the slice acquires) renews them on its own connections."""

    engine: Engine
    now: Callable[[], datetime]
    every: float = LEASE_RENEW_SECONDS
    held: dict[tuple[type, str, str, date], JobLease] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hold(self, lease: JobLease, day: date) -> None:
        with self.lock:
            self.held[(lease.model, lease.job, lease.owner, day)] = lease
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="job-lease-renewal", daemon=True)
                self.thread.start()

    def renew_all(self) -> None:
        with self.lock:
            held = [(lease, key[3]) for key, lease in self.held.items()]
        with Session(self.engine) as session, session.begin():
            for lease, day in held:
                lease.renew(session, day, self.now())

    def _run(self) -> None:
        while not self.stopping.wait(self.every):
            try:
                self.renew_all()
            except Exception as exc:  # noqa: BLE001 - the next round, or the next slice, renews it
                log.warning("job_lease_renewal_retry", error=str(exc)[:300])

    def stop(self) -> None:
        self.stopping.set()


_slice = threading.local()


@contextmanager
def leases_kept(
    engine: Engine, now: Callable[[], datetime], every: float = LEASE_RENEW_SECONDS
) -> Iterator[LeaseKeeper]:
    """Around one slice (in its thread): every lease it acquires is renewed while it runs."""
    keeper = LeaseKeeper(engine, now, every)
    previous = getattr(_slice, "keeper", None)
    _slice.keeper = keeper
    try:
        yield keeper
    finally:
        _slice.keeper = previous
        keeper.stop()


def _keep(lease: JobLease, day: date) -> None:
    keeper: LeaseKeeper | None = getattr(_slice, "keeper", None)
    if keeper is not None:
        keeper.hold(lease, day)
