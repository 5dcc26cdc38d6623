"""``baitiao bench desk`` end to end, small: every read of the plan is answered and timed by
the server, the worklist holds every case written, and every request of the checkout door
and of the plain bus beside it is answered.

Its speed is not judged here (``make bench`` measures it); this proves the instrument: a
read refused or untimed, a portfolio the desk does not see whole, or a purchase left
unanswered, fails.
"""

from __future__ import annotations

import pytest

from baitiao.bench_desk import run_desk_benchmark
from baitiao.bench_desk_portfolio import accounts_for
from tests.support.system import PG_BASE, fresh_redis_db

pytestmark = pytest.mark.e2e

CASES = 2000
SAMPLES = 10


def test_the_reads_are_timed_by_the_server_and_the_door_and_the_bus_answer_every_request(redis_db, tmp_path) -> None:
    url = fresh_redis_db(redis_db + 9)
    result = run_desk_benchmark(
        url,
        f"{PG_BASE}/postgres",
        cases=CASES,
        collectors=5,
        samples=SAMPLES,
        door_rate=40,
        door_seconds=2,
        door_pairs=2,
        door_accounts=20,
        out_dir=tmp_path,
    )

    assert result["cases"] == CASES
    assert result["accounts"] == accounts_for(CASES) == 2016  # each 120th account is at DPD 0
    assert result["worklist_total"] == CASES  # one open task a case, every one on the supervisor's list
    reads = result["reads"]
    assert len(reads) == 8 and "baseline /api/me" in reads
    for kind, row in reads.items():
        server, client = row["server"], row["client"]
        assert row["failed"] == 0, kind
        assert server["count"] == client["count"] == SAMPLES, kind
        assert 0 < server["p50_ms"] <= server["p99_ms"] <= server["p999_ms"], kind
        assert server["p50_ms"] <= client["p50_ms"], kind  # the server's part of each request
        assert row["p99_ratio_to_baseline"] == pytest.approx(
            server["p99_ms"] / reads["baseline /api/me"]["server"]["p99_ms"], abs=0.06
        )
    door = result["door"]
    assert door["bus"]["count"] == door["door"]["requests"] == 2 * 40 * 2
    assert door["bus"]["unanswered"] == 0
    assert door["door"]["failed"] == 0
    assert door["door"]["decided"] + door["door"]["undecided_202"] == door["door"]["requests"]
    assert door["door"]["decided"] > 0 and door["door"]["server"]["count"] == door["door"]["decided"]
    assert door["added_p50_ms"] == round(door["door"]["p50_ms"] - door["bus"]["p50_ms"], 2)
