"""``baitiao simulate`` on the embedded default, as the README's first command runs it:
no broker, no database configured, nothing to install but the Python packages."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from baitiao.simulation import charts
from tests.support.report_checks import chart_problems, headline_problems
from tests.support.system import run_cli

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_small_portfolio_on_the_embedded_default(tmp_path: Path) -> None:
    env = {key: "" for key in os.environ if key.startswith("BAITIAO_")}  # empty is unset
    env.update(
        {
            "BAITIAO_DATA_DIR": str(tmp_path / "data"),
            "BAITIAO_LOG_LEVEL": "WARNING",
            "BAITIAO_EMBEDDED_BROKER_PORT": str(_free_port()),
        }
    )
    out = tmp_path / "out"
    done = run_cli(["simulate", "--accounts", "20", "--days", "40", "--seed", "3", "--out", str(out)], env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["environment"]["backend"].startswith("embedded")
    assert report["invariants"] and all(report["invariants"].values()), report["invariants"]
    assert report["bills"]["issued_events"] > 0
    # the report a newcomer sees: the headline agrees with report.json, every chart reads alone
    assert headline_problems(report, out) == []
    drawn = charts.figures(report)
    try:
        assert [p for name, fig in drawn.items() for p in chart_problems(name, fig)] == []
    finally:
        for fig in drawn.values():
            plt.close(fig)
    assert "Delinquency rate" in done.stdout


def test_two_mixes_compared_on_one_seed(tmp_path: Path) -> None:
    env = {key: "" for key in os.environ if key.startswith("BAITIAO_")}
    env.update(
        {
            "BAITIAO_DATA_DIR": str(tmp_path / "data"),
            "BAITIAO_LOG_LEVEL": "WARNING",
            "BAITIAO_EMBEDDED_BROKER_PORT": str(_free_port()),
        }
    )
    (tmp_path / "calm.yaml").write_text("on_time: 0.9\n", encoding="utf-8")
    (tmp_path / "stormy.yaml").write_text("on_time: 0.2\nstops_paying: 0.4\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["--accounts", "20", "--days", "40", "--seed", "3", "--out", str(out)]
    done = run_cli(
        ["simulate", *args, "--compare", str(tmp_path / "calm.yaml"), str(tmp_path / "stormy.yaml")], env, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    comparison = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    assert comparison["runs"] == ["calm", "stormy"]
    for name in ("calm", "stormy"):
        report = json.loads((out / name / "report.json").read_text(encoding="utf-8"))
        assert report["config"]["seed"] == 3 and all(report["invariants"].values())
        assert comparison["mixes"][name] == report["config"]["mix"]
    assert comparison["mixes"]["calm"]["stops_paying"] < comparison["mixes"]["stormy"]["stops_paying"]
    assert "Contacts per cure" in (out / "comparison.md").read_text(encoding="utf-8")
