"""A fault drill: the seeded simulation with workers SIGKILLed at random gives the calm run's report.

The same small portfolio runs twice on PostgreSQL: calm, one worker per service; then
with two workers per service and one of the six SIGKILLed about every 20 s and restarted
at once (``--kill-every``). Whatever the kills hit (a batch of events held unacked, a job
slice, an outbox row being relayed), the second report must equal the first figure for
figure, with every invariant passing: the bus's visibility timeout restores a dead
worker's events, a dead worker's job slice runs again on a live worker, and inboxes and
leases make the repeats harmless. The drill must have killed at least three times, so
the test cannot pass by not killing.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.simulation import differences, figures, simulate

pytestmark = pytest.mark.e2e

REDIS_DB = 15  # this file's own Redis database (flushed by the simulator too)
PORTFOLIO = ["--accounts", "100", "--days", "120", "--seed", "7"]
# What the e2e tests use: a dead worker's events come back after 15 s, not a minute.
ENV = {"BAITIAO_VISIBILITY_TIMEOUT": "15"}


def test_workers_killed_at_random_leave_the_report_as_a_calm_run_gives_it(tmp_path: Path) -> None:
    calm = simulate(tmp_path / "calm", REDIS_DB, PORTFOLIO, ENV)
    assert calm["invariants"] and all(calm["invariants"].values()), calm["invariants"]
    assert "faults" not in calm["environment"]

    drill = simulate(tmp_path / "drill", REDIS_DB,
                     [*PORTFOLIO, "--workers-per-service", "2", "--kill-every", "20", "--kill-seed", "3"], ENV,
                     timeout=900)
    faults = drill["environment"]["faults"]
    assert drill["environment"]["workers_per_service"] == 2
    assert faults["count"] >= 3, faults
    failed = [name for name, ok in drill["invariants"].items() if not ok]
    assert not failed, (failed, faults)
    assert figures(drill) == figures(calm), "\n".join(
        [f"kills: {faults['kills']}", *differences(figures(calm), figures(drill))[:40]])
