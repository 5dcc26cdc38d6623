"""The report of a small run, rendered again from its report.json: every chart has a
title, labelled axes and a legend where it has more than one series (read from the
figures' own objects), and the headline agrees with report.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from click.testing import CliRunner

from baitiao.cli import main
from baitiao.simulation import charts
from baitiao.simulation.headline import headline
from baitiao.simulation.report import write_report
from tests.support.report_checks import chart_problems, headline_problems

SMALL_RUN = Path(__file__).parent / "data" / "simulation_report.json"  # 120 accounts x 100 days, seed 5


def _report() -> dict[str, Any]:
    report: dict[str, Any] = json.loads(SMALL_RUN.read_text(encoding="utf-8"))
    return report


def test_every_chart_has_a_title_labelled_axes_and_a_legend_for_several_series() -> None:
    report = _report()
    report["headline"] = headline(report)
    drawn = charts.figures(report)
    try:
        assert {"delinquency", "buckets", "roll_rates", "vintages", "cure_rates", "money", "plans"} <= set(drawn)
        problems = [p for name, fig in drawn.items() for p in chart_problems(name, fig)]
    finally:
        plt.close("all")
    assert problems == []


def test_the_check_finds_a_chart_without_title_labels_or_legend() -> None:
    fig, ax = plt.subplots()
    try:
        ax.plot([1, 2], label="billed")
        ax.plot([2, 1], label="collected")
        assert len(chart_problems("bare", fig)) == 4
    finally:
        plt.close(fig)


def test_the_roll_rate_matrix_leaves_out_empty_rows_and_reads_in_percent() -> None:
    report = _report()
    fig = charts.figures(report)["roll_rates"]
    try:
        ax = fig.axes[0]
        rows = [t.get_text() for t in ax.get_yticklabels()]
        matrix = report["delinquency"]["roll_rates"]["matrix"]
        assert len(rows) == sum(1 for v in matrix.values() if v["accounts"])
        assert all(not row.endswith("(0)") for row in rows)
        assert all(t.get_text().endswith("%") for t in ax.texts)
        assert "%" in fig.axes[1].get_ylabel()
    finally:
        plt.close("all")


def test_the_written_report_opens_with_the_headline_and_agrees_with_report_json(tmp_path: Path) -> None:
    write_report(_report(), tmp_path)
    written = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert headline_problems(written, tmp_path) == []
    assert written["headline"]["story"] and all(s.endswith(".") for s in written["headline"]["story"])


def test_a_figure_the_run_cannot_know_is_zero_with_its_definition() -> None:
    report = _report()
    report["money"] = {**report["money"], "waived": "0.00", "written_off": "0.00", "recovered": "0.00"}
    figures = headline(report)["figures"]
    for key in ("waived", "written_off", "net_loss", "loss_rate"):
        assert float(figures[key]["value"]) == 0 and figures[key]["definition"]


def test_baitiao_report_rebuilds_the_report_of_a_finished_run(tmp_path: Path) -> None:
    shutil.copy(SMALL_RUN, tmp_path / "report.json")
    done = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert done.exit_code == 0, done.output
    for name in ("report.md", "report.html", "charts/money.png", "charts/vintages.png"):
        assert (tmp_path / name).stat().st_size > 0
    rebuilt = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in rebuilt.items() if k != "headline"} == {
        k: v for k, v in _report().items() if k != "headline"
    }
    assert "Delinquency rate" in done.output and "%" in done.output


def test_baitiao_report_says_what_is_missing(tmp_path: Path) -> None:
    done = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert done.exit_code != 0 and "report.json not found" in done.output


@pytest.mark.parametrize("name", ["money", "charges", "contacts"])
def test_money_and_count_axes_carry_their_units(name: str) -> None:
    fig = charts.figures(_report())[name]
    try:
        labels = " ".join(ax.get_xlabel() + " " + ax.get_ylabel() for ax in fig.axes)
        assert ("CNY" in labels) if name != "contacts" else ("contacts" in labels)
    finally:
        plt.close("all")


def test_two_mixes_are_compared_side_by_side_b_less_a(tmp_path: Path) -> None:
    from baitiao.simulation.comparison import compare, write_comparison

    a = _report()
    a["headline"] = headline(a)
    b = json.loads(json.dumps(a, default=str))
    b["money"] = {**b["money"], "written_off": "1500.00", "recovered": "500.00"}
    b["headline"] = headline(b)
    comparison = compare([("calm", a), ("stormy", b)])
    rows = {r["figure"]: r for r in comparison["rows"]}
    assert {"cure_rate", "contacts_per_cure", "net_loss"} <= set(rows)
    assert rows["net_loss"]["difference"] == "+1,000.00" and rows["net_loss"]["shown"][1] == "1,000.00"
    assert rows["cure_rate"]["difference"] == "+0.0 pp"
    page = write_comparison(comparison, tmp_path).read_text(encoding="utf-8")
    assert "| Net loss (CNY) | 0.00 | 1,000.00 | +1,000.00 |" in page
    assert json.loads((tmp_path / "comparison.json").read_text(encoding="utf-8"))["runs"] == ["calm", "stormy"]
