"""``baitiao simulate`` as a user runs it, on real Redis and PostgreSQL, for the e2e tests.

``simulate`` runs the command in a process of its own on a Redis database of the test's
and fresh ``sim_<run>_<service>`` PostgreSQL databases, drops those databases, and
returns report.json; ``figures`` is what two runs of one seed must agree on.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.system import PG_BASE, SERVICES, fresh_redis_db, run_cli

VARYING = ("timings", "speed", "environment")  # what may differ between two runs of one seed


def run_simulate(
    out: Path, redis_db: int, args: list[str], env: dict[str, str] | None = None, timeout: float = 600
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """Run ``baitiao simulate ARGS --out OUT``; its process and its report (None if it wrote none).
    The run's databases are dropped either way."""
    run_env = {
        "BAITIAO_BROKER_URL": fresh_redis_db(redis_db),
        "BAITIAO_LOG_LEVEL": "WARNING",
        **{f"BAITIAO_{s.upper()}_DB_URL": f"{PG_BASE}/baitiao_sim_test" for s in SERVICES},
        **(env or {}),
    }
    done = run_cli(["simulate", *args, "--out", str(out)], run_env, timeout=timeout)
    report_path = out / "report.json"
    if not report_path.exists():
        _drop_databases_named_in(done.stderr)
        return done, None
    report = json.loads(report_path.read_text(encoding="utf-8"))
    drop_run_databases(report)
    return done, report


def simulate(
    out: Path, redis_db: int, args: list[str], env: dict[str, str] | None = None, timeout: float = 600
) -> dict[str, Any]:
    """Run ``baitiao simulate``; assert it wrote its report and exited 0, and return the report."""
    done, report = run_simulate(out, redis_db, args, env, timeout)
    assert report is not None and done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return report


def _drop_databases_named_in(stderr: str) -> None:
    """A run that stopped before its report: drop the sim_ databases its first lines name."""
    admin = create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for prefix in set(re.findall(r"\bsim_[0-9a-f]{8}\b", stderr)):
            for service in SERVICES:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{prefix}_{service}" WITH (FORCE)'))
    admin.dispose()


def drop_run_databases(report: dict[str, Any]) -> None:
    admin = create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for url in report["environment"]["databases"].values():
            name = make_url(url).database
            assert name and name.startswith("sim_")  # fresh databases of the run, never the configured one
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what may vary between two runs of one seed."""
    return {k: v for k, v in report.items() if k not in VARYING}


def differences(left: Any, right: Any, path: str = "") -> list[str]:
    """Where two reports' figures differ, as ``path: left != right`` lines (for a failure message)."""
    if isinstance(left, dict) and isinstance(right, dict):
        found = []
        for key in sorted(set(left) | set(right), key=str):
            found += differences(left.get(key, "<absent>"), right.get(key, "<absent>"), f"{path}.{key}")
        return found
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [d for i, (a, b) in enumerate(zip(left, right)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if left == right else [f"{path}: {left!r} != {right!r}"]
