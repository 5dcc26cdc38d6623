"""``baitiao simulate`` end to end on real Redis and PostgreSQL, as a user runs it.

A small portfolio (50 accounts, 60 days) goes through the three real workers; its
invariants must all hold, and a second run with the same seed must give the same
report, figure for figure (only timings and where it ran may differ).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.system import PG_BASE, fresh_redis_db, run_cli

pytestmark = pytest.mark.e2e

REDIS_DB = 13  # this file's own Redis database (flushed by the simulator too)
VARYING = ("timings", "speed", "environment")


def _simulate(out: Path) -> dict[str, Any]:
    env = {"BAITIAO_BROKER_URL": fresh_redis_db(REDIS_DB), "BAITIAO_LOG_LEVEL": "WARNING",
           **{f"BAITIAO_{s.upper()}_DB_URL": f"{PG_BASE}/baitiao_sim_test"
              for s in ("accounts", "collections", "restructuring")}}
    done = run_cli(["simulate", "--accounts", "50", "--days", "60", "--seed", "7", "--out", str(out)], env,
                   timeout=600)  # ~30 s a run on a quiet machine; generous for a loaded CI box
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    _drop_run_databases(report)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return report


def _drop_run_databases(report: dict[str, Any]) -> None:
    admin = create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for url in report["environment"]["databases"].values():
            name = make_url(url).database
            assert name and name.startswith("sim_")  # fresh databases of the run, never the configured one
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


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
    strip = lambda r: {k: v for k, v in r.items() if k not in VARYING}  # noqa: E731
    assert strip(second) == strip(first)
