"""The report's charts over time (matplotlib, Agg backend: no display needed).

Flows (money billed and collected) are monthly bars, stocks (accounts by bucket, shares
past due) are lines or areas; every time axis carries dates, every chart a title, axes
with units and a legend when it has more than one series. A bucket has one colour
everywhere (``BUCKET_COLOURS``). The breakdowns (roll rates, cure rates, contacts,
plans) are in ``charts_breakdowns``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter  # noqa: E402

from baitiao.simulation.headline import BUCKET_LABELS, shares  # noqa: E402
from baitiao.simulation.tally import PAST_DUE  # noqa: E402

BUCKET_COLOURS = {
    "current": "#4caf50",
    "1-3": "#f9a825",
    "4-30": "#fb8c00",
    "31-60": "#e53935",
    "61-90": "#ad1457",
    "91-179": "#6a1b9a",
    "180+": "#212121",
    "in_plan": "#1e88e5",
}
SHARE_COLOURS = {"delinquency_rate": BUCKET_COLOURS["1-3"], "30+": BUCKET_COLOURS["31-60"]}
SHARE_COLOURS |= {"60+": BUCKET_COLOURS["61-90"], "90+": BUCKET_COLOURS["91-179"]}
CNY = FuncFormatter(lambda v, _: f"{v:,.0f}")


def figures(report: dict[str, Any]) -> dict[str, Figure]:
    """Every chart of the report as a matplotlib figure, by name (the caller closes them)."""
    from baitiao.simulation import charts_breakdowns as br

    return {
        "delinquency": _delinquency(report),
        "buckets": _buckets(report),
        "roll_rates": br.roll_rates(report),
        "vintages": _vintages(report),
        "cure_rates": br.cure_rates(report),
        "money": _money(report),
        "charges": _charges(report),
        "contacts": br.contacts(report),
        "plans": br.plans(report),
    }


def draw_all(report: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Draw every chart into ``out_dir/charts``; returns name -> path relative to out_dir."""
    folder = out_dir / "charts"
    folder.mkdir(parents=True, exist_ok=True)
    drawn = {}
    for name, fig in figures(report).items():
        fig.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        drawn[name] = f"charts/{name}.png"
    return drawn


def dated(ax: Any) -> None:
    """Dates on the x axis, a tick a month (or a week on a short run)."""
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    ax.set_xlabel("date")
    for label in ax.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")


def _days(timeline: list[dict[str, Any]]) -> list[date]:
    return [date.fromisoformat(row["date"]) for row in timeline]


def _delinquency(report: dict[str, Any]) -> Figure:
    timeline, accounts = report["delinquency"]["timeline"], int(report["config"]["accounts"])
    rows = [shares(row, accounts) for row in timeline]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    names = {"delinquency_rate": "past due (1+ days)", "30+": "30+ days", "60+": "60+ days", "90+": "90+ days"}
    for key, label in names.items():
        ax.plot(_days(timeline), [r[key] * 100 for r in rows], label=label, color=SHARE_COLOURS[key], lw=2)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.yaxis.set_major_locator(MaxNLocator(steps=[1, 2, 5, 10], integer=True))
    ax.set_ylim(bottom=0)
    ax.set_title("Share of accounts past due, after each daily close")
    ax.set_ylabel("% of all accounts")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    dated(ax)
    return fig


def _buckets(report: dict[str, Any]) -> Figure:
    timeline = report["delinquency"]["timeline"]
    shown = [*PAST_DUE, "in_plan"]
    shown = [b for b in shown if any(row.get(b, 0) for row in timeline)] or ["1-3"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.stackplot(
        _days(timeline),
        *[[row.get(b, 0) for row in timeline] for b in shown],
        labels=[BUCKET_LABELS[b] for b in shown],
        colors=[BUCKET_COLOURS[b] for b in shown],
    )
    ax.set_title("Accounts past due or in a plan, by bucket (after each daily close)")
    ax.set_ylabel("accounts")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    dated(ax)
    return fig


def _vintages(report: dict[str, Any]) -> Figure:
    vintages = report["delinquency"].get("vintages", {})
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for cohort, cells in vintages.items():
        points = sorted((int(m), c["30+"] / c["accounts"] * 100) for m, c in cells.items() if c["accounts"])
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3, label=f"opened in {cohort}")
    if not vintages:
        ax.plot([], [], label="no month end in the run")
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.yaxis.set_major_locator(MaxNLocator(steps=[1, 2, 5, 10], integer=True))
    ax.set_ylim(bottom=0)
    ax.set_title("Vintages: share 30+ days past due by months on book, one line per opening year")
    ax.set_xlabel("months on book (month ends of the run)")
    ax.set_ylabel("% of the cohort 30+ days past due")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def monthly(daily: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, dict[str, Decimal]]:
    """Daily money rows summed per month ("YYYY-MM" -> key -> Decimal)."""
    months: dict[str, dict[str, Decimal]] = defaultdict(lambda: {k: Decimal("0") for k in keys})
    for row in daily:
        for key in keys:
            months[row["date"][:7]][key] += Decimal(str(row.get(key, "0")))
    return dict(sorted(months.items()))


def _money(report: dict[str, Any]) -> Figure:
    months = monthly(report["daily_money"], ("billed", "repaid"))
    labels = list(months)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = range(len(labels))
    width = 0.4
    billed = [float(months[m]["billed"]) for m in labels]
    repaid = [float(months[m]["repaid"]) for m in labels]
    ax.bar([i - width / 2 for i in x], billed, width, label="billed (bills issued)", color="#90a4ae")
    ax.bar([i + width / 2 for i in x], repaid, width, label="collected (repayments applied)", color="#43a047")
    ax.set_xticks(list(x), labels)
    ax.set_ylim(0, max([*billed, *repaid, 1.0]) * 1.3)  # room for the legend above the bars
    ax.yaxis.set_major_formatter(CNY)
    ax.set_title("Billed and collected per month")
    ax.set_xlabel("month")
    ax.set_ylabel("CNY")
    ax.legend(loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _charges(report: dict[str, Any]) -> Figure:
    money = report["money"]
    rows = [
        ("penalty interest charged", money["penalty_charged"], "#e53935"),
        ("late fees charged", money["late_fees_charged"], "#fb8c00"),
        ("plan fees", money["plan_fees"], "#1e88e5"),
        (
            "penalty and fees reversed",
            Decimal(str(money["penalty_reversed"])) + Decimal(str(money["late_fees_reversed"])),
            "#90a4ae",
        ),
        ("waived", money["waived"], "#fdd835"),
        ("written off", money["written_off"], "#212121"),
        ("recovered", money["recovered"], "#43a047"),
    ]
    fig, ax = plt.subplots(figsize=(10, 4))
    values = [float(v) for _, v, _ in rows]
    bars = ax.barh([r[0] for r in rows], values, color=[r[2] for r in rows])
    ax.bar_label(bars, labels=[f"{Decimal(str(v)):,.2f}" for _, v, _ in rows], fontsize=8, padding=2)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(CNY)
    ax.set_xlim(0, max(values + [1.0]) * 1.2)
    ax.set_title("Charges, waivers and losses over the run")
    ax.set_xlabel("CNY")
    ax.set_ylabel("figure")
    return fig
