"""The job lease (``shared/job_runs.py``) on real PostgreSQL: renewed by its live run, taken over
from a dead one within ``LEASE_SECONDS``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, MetaData
from sqlalchemy.orm import DeclarativeBase, Session

from shared.job_runs import JobLease, JobRunColumns, LeaseHeld, leases_kept
from shared.job_timing import LEASE_SECONDS, TAKEOVER_SECONDS
from tests.support.system import scratch_database

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 20)
T0 = datetime(2026, 3, 20, 0, 30, tzinfo=timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData()


class JobRun(JobRunColumns, Base):
    __tablename__ = "job_runs"


@pytest.fixture()
def engine() -> Iterator[Engine]:
    with scratch_database("bt_lease", Base.metadata) as engine:
        yield engine


def _acquire(engine: Engine, owner: str, now: datetime) -> None:
    with Session(engine) as session, session.begin():
        JobLease(JobRun, "daily-close", owner).acquire(session, DAY, now)


def _claim(engine: Engine) -> tuple[str | None, datetime]:
    with Session(engine) as session:
        run = session.get(JobRun, ("daily-close", DAY))
        assert run is not None
        return run.owner, run.started_at


def test_a_run_renewing_its_lease_is_never_taken_over_and_a_dead_one_is_within_the_lease(engine) -> None:
    assert LEASE_SECONDS < TAKEOVER_SECONDS
    _acquire(engine, "live", T0)
    # Each slice of the live run renews it: long after the first claim, a rerun is still refused.
    for minutes in range(1, 6):
        now = T0 + timedelta(minutes=minutes)
        _acquire(engine, "live", now)
        with pytest.raises(LeaseHeld):
            _acquire(engine, "rerun", now + timedelta(seconds=LEASE_SECONDS - 1))
    # The live run's worker dies after its last renewal: a rerun takes over once the lease is stale.
    last = T0 + timedelta(minutes=5)
    _acquire(engine, "rerun", last + timedelta(seconds=LEASE_SECONDS))
    assert _claim(engine)[0] == "rerun"
    # The dead run's slice, delivered again, now finds the date held by the rerun.
    with pytest.raises(LeaseHeld):
        _acquire(engine, "live", last + timedelta(seconds=LEASE_SECONDS + 1))


def test_a_long_slice_keeps_its_lease_fresh_while_it_runs_and_stops_when_it_ends(engine) -> None:
    clock = {"now": T0}
    with leases_kept(engine, lambda: clock["now"], every=0.1):
        _acquire(engine, "live", T0)
        clock["now"] = T0 + timedelta(seconds=LEASE_SECONDS * 3)  # a slice far longer than the lease
        deadline = time.monotonic() + 10
        while _claim(engine)[1] != clock["now"]:
            assert time.monotonic() < deadline, "the running slice's lease was not renewed"
            time.sleep(0.05)
        with pytest.raises(LeaseHeld):
            _acquire(engine, "rerun", clock["now"] + timedelta(seconds=1))
    ended = clock["now"]
    clock["now"] = ended + timedelta(seconds=LEASE_SECONDS * 3)
    time.sleep(0.5)
    assert _claim(engine) == ("live", ended)  # no renewal once the slice ended


def test_a_done_date_is_not_renewed(engine) -> None:
    with leases_kept(engine, lambda: T0 + timedelta(hours=1), every=0.05):
        with Session(engine) as session, session.begin():
            lease = JobLease(JobRun, "daily-close", "live")
            lease.acquire(session, DAY, T0)
            lease.finish(session, DAY, {"ok": True}, T0)
        time.sleep(0.3)
    with Session(engine) as session:
        run = session.get(JobRun, ("daily-close", DAY))
        assert run is not None and run.status == "done" and run.started_at == T0
