"""``baitiao simulate`` end to end on real Redis and PostgreSQL, as a user runs it.

A small portfolio (50 accounts, 60 days) goes through the three real workers; its
invariants must all hold, and a second run with the same seed must give the same
report, figure for figure (only timings and where it ran may differ).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.simulation import figures, simulate

pytestmark = pytest.mark.e2e

REDIS_DB = 13  # this file's own Redis database (flushed by the simulator too)


def _simulate(out: Path) -> dict[str, Any]:
    # ~30 s a run on a quiet machine; generous for a loaded CI box
    return simulate(out, REDIS_DB, ["--accounts", "50", "--days", "60", "--seed", "7"], timeout=600)


def test_a_small_portfolio_runs_end_to_end_and_the_same_seed_gives_the_same_report(tmp_path: Path) -> None:
    first = _simulate(tmp_path / "first")
    assert first["invariants"] and all(first["invariants"].values()), first["invariants"]
    assert first["environment"]["backend"] == "PostgreSQL + Redis"
    assert first["bills"]["issued_events"] > 0 and first["repayments"]["applied"] > 0
    assert first["events"]["observed_by_type"].get("account.delinquency.updated", 0) > 0
    assert first["collections"]["sms_sent"] > 0
    for chart in ("buckets", "roll_rates", "cure_rates", "contacts", "plans", "money"):
        assert (tmp_path / "first" / "charts" / f"{chart}.png").stat().st_size > 0
    markdown = (tmp_path / "first" / "report.md").read_text(encoding="utf-8")
    assert "charts/buckets.png" in markdown and "模拟客户" not in markdown and "1990000" not in markdown

    second = _simulate(tmp_path / "second")
    assert figures(second) == figures(first)
