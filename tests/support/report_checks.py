"""What a rendered report must hold, read from the charts' own matplotlib objects and
from report.json: used on a stored small run (unit) and on a fresh one (e2e)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure

from baitiao.simulation.headline import shown

TIME_CHARTS = ("delinquency", "buckets")  # dates on the x axis


def _series(ax: Any) -> int:
    lines = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    return len(lines) + len(ax.containers) + len([c for c in ax.collections if not c.get_label().startswith("_")])


def chart_problems(name: str, fig: Figure) -> list[str]:
    """Every chart: a title, both axes labelled, a legend when it has more than one series;
    a colour bar labelled; a time chart dated."""
    problems = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            if not (ax.get_ylabel() or ax.get_xlabel()):
                problems.append(f"{name}: colour bar without a label")
            continue
        where = f"{name} ({ax.get_title() or 'untitled'})"
        if not ax.get_title():
            problems.append(f"{where}: no title")
        if not ax.get_xlabel():
            problems.append(f"{where}: x axis without a label")
        if not ax.get_ylabel():
            problems.append(f"{where}: y axis without a label")
        if _series(ax) > 1 and ax.get_legend() is None:
            problems.append(f"{where}: {_series(ax)} series and no legend")
        if name in TIME_CHARTS and not isinstance(ax.xaxis.get_major_formatter(), DateFormatter):
            problems.append(f"{where}: time axis without dates")
    return problems


def headline_problems(report: dict[str, Any], out: Path) -> list[str]:
    """The headline in report.json agrees with the figures it comes from, and report.md
    and report.html show it first."""
    figures = report["headline"]["figures"]
    money = {k: Decimal(v) for k, v in report["money"].items()}
    last = report["delinquency"]["timeline"][-1]
    accounts = report["config"]["accounts"]
    past_due = sum(last[b] for b in ("1-3", "4-30", "31-60", "61-90", "91-179", "180+"))
    events = report["plans"]["events"]
    current = report["delinquency"]["roll_rates"]["matrix"]["current"]
    expected = {
        "roll_current_to_past_due": round(
            (current["accounts"] - current["to"]["current"] - current["to"]["in_plan"]) / current["accounts"], 4
        )
        if current["accounts"]
        else 0.0,
        "accounts": accounts,
        "delinquency_rate": round(past_due / accounts, 4),
        "90+": round((last["91-179"] + last["180+"]) / accounts, 4),
        "collected": money["repaid"],
        "billed": money["billed_statements"],
        "balance": money["outstanding"],
        "net_loss": money["written_off"] - money["recovered"],
        "waived": money["waived"],
        "penalty_and_fees_charged": money["penalty_charged"] + money["late_fees_charged"],
        "plans_accepted": events.get("plan.activated", 0),
        "plans_defaulted": events.get("plan.defaulted", 0),
        "contacts_outside_window": report["collections"]["contacts_outside_window_count"],
    }
    problems = []
    for key, value in expected.items():
        got = figures[key]["value"]
        got = Decimal(got) if isinstance(value, Decimal) else got
        if got != value:
            problems.append(f"headline {key}: {got!r} != {value!r} from report.json")
        if not figures[key]["definition"]:
            problems.append(f"headline {key}: no definition")
    markdown = (out / "report.md").read_text(encoding="utf-8")
    first = markdown.split("\n## ")[1]
    if not first.startswith("How the portfolio did"):
        problems.append("report.md does not open with how the portfolio did")
    problems += [f"report.md headline lacks {k}" for k, f in figures.items() if f"| {shown(f)} |" not in first]
    if markdown.index("## Engineering checks") < markdown.index("## Money"):
        problems.append("report.md: the engineering checks are not at the end")
    page = (out / "report.html").read_text(encoding="utf-8")
    if "http://" in page.replace("http://www.w3.org", "") or "https://" in page or 'src="charts/' in page:
        problems.append("report.html is not self-contained")
    if page.count('src="data:image/png;base64,') != len(list((out / "charts").glob("*.png"))):
        problems.append("report.html does not embed every chart")
    return problems
