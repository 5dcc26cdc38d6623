"""``baitiao bench checkout`` end to end, small: the real workers answer every purchase request
the generators send, the echo answers every one of its own, and the figures are those answers'.

Its speed is not judged here (``make bench`` measures it); this proves the instrument counts
what happened: a request left unanswered, or an answer matched to the wrong request, fails.
"""

from __future__ import annotations

import pytest

from baitiao.bench_checkout import Phase, run_checkout_benchmark
from tests.support.system import PG_BASE, fresh_redis_db

pytestmark = pytest.mark.e2e


def test_every_request_of_every_phase_is_answered_by_the_system_and_by_the_echo(redis_db, tmp_path) -> None:
    url = fresh_redis_db(redis_db + 9)
    phases = [Phase("steady-40", 40, 2, 0), Phase("burst", 0, 0, 200)]
    result = run_checkout_benchmark(url, f"{PG_BASE}/postgres", phases, accounts=20, generators=2, out_dir=tmp_path)

    assert result["accounts"] == 20
    assert [row["phase"] for row in result["phases"]] == ["steady-40", "burst"]
    for row in result["phases"]:
        echoed, ours = row["echo"], row["ours"]
        # The echo times every request; the system every purchase (one message in ten
        # from the generators is a repayment, untimed).
        assert echoed["requests"] == (80 if row["phase"] == "steady-40" else 200)
        assert ours["requests"] == echoed["requests"] * 9 // 10
        assert echoed["answered"] == echoed["requests"]
        assert ours["answered"] == ours["requests"]
        assert 0 < ours["p50_ms"] <= ours["p99_ms"] <= ours["p999_ms"]
        assert row["p99_ratio_to_echo"] == round(ours["p99_ms"] / echoed["p99_ms"], 2)
        # Where the time went, read back from the accounts database's own stamps: every
        # answered purchase was handled after it was sent and published after it was handled.
        path = ours["path_ms"]
        assert set(path) == {"sent_to_handled", "handled_to_published", "published_to_arrived"}
        assert path["sent_to_handled"]["p50_ms"] > 0
        assert path["handled_to_published"]["p50_ms"] > 0
