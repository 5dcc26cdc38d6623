"""A fault drill: the seeded simulation with workers SIGKILLed at random gives the calm run's report.

The same small portfolio runs twice on PostgreSQL: calm, one worker per service; then
with two workers per service and one of the six SIGKILLed about every 10 s and restarted
at once (``--kill-every``). Whatever the kills hit (a batch of events held unacked, a job
slice, an outbox row being relayed), the second report must equal the first figure for
figure, with every invariant passing: the bus's visibility timeout restores a dead
worker's events, a dead worker's job slice runs again on a live worker, and inboxes and
leases make the repeats harmless. The drill must have killed at least three times, so
the test cannot pass by not killing.

A job message popped by a worker killed before it recorded it as held (kombu's BRPOP
window) is sent again by the lost job watch (``shared/lost_job_messages.py``); an event is
never popped without being recorded as held (``BulkTake``, ``shared/bus/kombu_redis.py``);
two workers' runs on one account follow each other (restructuring locks the run's
accounts); and the driver sends one identity's events of a phase one wave at a time, as
its checkout would (``one_per_identity``): two purchases of one account taken at once by
two workers could otherwise be decided either way round.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.simulation import differences, figures, run_simulate, simulate

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

REDIS_DB = 15  # this file's own Redis database (flushed by the simulator too)
# ~50 s calm on a quiet 2-core machine, less on a fast one: long enough for several kills
# at one every 10 s (a restarted worker is killable again after its 12 s warm-up).
PORTFOLIO = ["--accounts", "50", "--days", "100", "--seed", "7"]
# What the e2e tests use: a dead worker's events come back after 15 s, not a minute.
ENV = {"BAITIAO_VISIBILITY_TIMEOUT": "15"}


def test_workers_killed_at_random_leave_the_report_as_a_calm_run_gives_it(tmp_path: Path) -> None:
    calm = simulate(tmp_path / "calm", REDIS_DB, PORTFOLIO, ENV)
    assert calm["invariants"] and all(calm["invariants"].values()), calm["invariants"]
    assert "faults" not in calm["environment"]

    done, drill = run_simulate(
        tmp_path / "drill",
        REDIS_DB,
        [*PORTFOLIO, "--workers-per-service", "2", "--kill-every", "10", "--kill-seed", "3"],
        ENV,
        timeout=900,
    )
    assert drill is not None and done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    faults = drill["environment"]["faults"]
    assert drill["environment"]["workers_per_service"] == 2
    assert faults["count"] >= 3, faults
    failed = [name for name, ok in drill["invariants"].items() if not ok]
    assert not failed, (failed, faults)
    assert figures(drill) == figures(calm), "\n".join(
        [f"kills: {faults['kills']}", *differences(figures(calm), figures(drill))[:40]]
    )
