"""The report's breakdown charts: roll rates, cure rates, contacts and plans.

The roll-rate matrix is in percent of the from-bucket, its empty rows left out, with a
labelled scale; bars carry their values, so a chart reads without the tables.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter  # noqa: E402

from baitiao.simulation.charts import BUCKET_COLOURS  # noqa: E402
from baitiao.simulation.headline import BUCKET_LABELS, STAGE_LABELS  # noqa: E402
from baitiao.simulation.tally import BUCKETS  # noqa: E402

THOUSANDS = FuncFormatter(lambda v, _: f"{v:,.0f}")
GRADE_COLOURS = {"A": "#2e7d32", "B": "#66bb6a", "C": "#fdd835", "D": "#fb8c00", "E": "#e53935"}


def roll_rates(report: dict[str, Any]) -> Figure:
    matrix = report["delinquency"]["roll_rates"]["matrix"]
    rows = [b for b in BUCKETS if matrix[b]["accounts"]]
    columns = [b for b in BUCKETS if any(matrix[a]["to"][b] for a in rows)] or list(BUCKETS)
    data = [[(matrix[a]["share"][b] or 0.0) * 100 for b in columns] for a in rows]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.7 * max(len(rows), 1)))
    image = ax.imshow(data or [[0.0]], cmap="Reds", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(columns)), [BUCKET_LABELS[b].replace(" days past due", " DPD") for b in columns])
    ax.set_yticks(
        range(len(rows)),
        [f"{BUCKET_LABELS[b].replace(' days past due', ' DPD')} ({matrix[b]['accounts']:,})" for b in rows],
    )
    for label in ax.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")
    for i, row in enumerate(data):
        for j, value in enumerate(row):
            if value:
                ax.text(
                    j,
                    i,
                    f"{value:.0f}%" if value >= 0.5 else "<1%",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if value > 60 else "black",
                )
    ax.set_xlabel("bucket at the next month end")
    ax.set_ylabel("bucket at a month end (account-months)")
    ax.set_title("Roll rates: where accounts of each bucket are a month later (% of the row)")
    bar = fig.colorbar(image, ax=ax, fraction=0.046)
    bar.set_label("% of the from-bucket's accounts")
    return fig


def cure_rates(report: dict[str, Any]) -> Figure:
    cure = report["collections"]["cure_rates"]
    stages = [s for s in cure["by_stage"] if s != "pre_due"] or list(cure["by_stage"])
    grades = sorted({g for s in stages for g in cure["by_stage_and_grade"].get(s, {})})
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / (len(grades) + 1)
    for k, grade in enumerate(grades):
        values = [(cure["by_stage_and_grade"].get(s, {}).get(grade, {}).get("rate") or 0) * 100 for s in stages]
        ax.bar(
            [i + k * width for i in range(len(stages))],
            values,
            width,
            label=f"grade {grade}",
            color=GRADE_COLOURS.get(grade, "#90a4ae"),
        )
    overall = [(cure["by_stage"][s]["rate"] or 0) * 100 for s in stages]
    bars = ax.bar(
        [i + len(grades) * width for i in range(len(stages))], overall, width, label="all grades", color="#455a64"
    )
    ax.bar_label(bars, labels=[f"{v:.0f}%" for v in overall], fontsize=8)
    ax.set_xticks([i + len(grades) * width / 2 for i in range(len(stages))], [STAGE_LABELS.get(s, s) for s in stages])
    ax.set_ylim(0, 100)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_xlabel("collections stage")
    ax.set_ylabel("cured / entered (%)")
    ax.set_title("Cure rate by collections stage and risk grade (grade at the end of the run)")
    ax.legend(fontsize=8)
    return fig


def contacts(report: dict[str, Any]) -> Figure:
    col = report["collections"]
    names = {
        "sms:sent": "SMS sent",
        "call:attempted": "calls attempted",
        "call:task_created": "call tasks",
        "agency:task_created": "agency referrals",
        "legal:task_created": "legal referrals",
        "sms:suppressed": "SMS held back",
        "call:suppressed": "calls held back",
    }
    channel = {names.get(k, _words(k)): v for k, v in col["contacts_by_channel_status"].items()}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    bars = left.barh(list(channel) or ["(none)"], list(channel.values()) or [0], color="#1e88e5")
    left.bar_label(bars, labels=[f"{v:,}" for v in channel.values()] or ["0"], fontsize=8, padding=2)
    left.set_xlim(0, max([*channel.values(), 1]) * 1.15)
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.xaxis.set_major_formatter(THOUSANDS)
    left.set_title("Contacts by channel")
    left.set_xlabel("contacts")
    left.set_ylabel("channel")
    reasons = {_words(k): v for k, v in col["suppressed_by_reason"].items()} or {"none suppressed": 0}
    bars = right.barh(list(reasons), list(reasons.values()), color="#fb8c00")
    right.bar_label(bars, labels=[f"{v:,}" for v in reasons.values()], fontsize=8, padding=2)
    right.set_xlim(0, max([*reasons.values(), 4]) * 1.2)
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not col["suppressed_by_reason"]:
        right.text(0.5, 0.6, "no contact was held back in this run", transform=right.transAxes, ha="center")
    right.set_title("Contacts held back by the compliance rules")
    right.set_xlabel("contacts suppressed")
    right.set_ylabel("reason")
    fig.tight_layout()
    return fig


def plans(report: dict[str, Any]) -> Figure:
    plans = report["plans"]
    events = plans["events"]
    steps = {
        "offered": plans["requests"].get("offered", 0),
        "accepted": events.get("plan.activated", 0),
        "still running": plans["plans_by_status"].get("active", 0),
        "completed": events.get("plan.completed", 0),
        "defaulted": events.get("plan.defaulted", 0),
    }
    ineligible = sum(v for k, v in plans["requests"].items() if k.startswith("ineligible"))
    steps = {"asked, not eligible": ineligible, **steps}
    colours = ["#90a4ae", "#5c6bc0", "#43a047", BUCKET_COLOURS["in_plan"], "#2e7d32", "#e53935"]
    fig, ax = plt.subplots(figsize=(10, 4))
    bars = ax.barh(list(steps), list(steps.values()), color=colours)
    ax.bar_label(bars, labels=[f"{v:,}" for v in steps.values()], fontsize=8, padding=2)
    ax.invert_yaxis()
    ax.set_xlim(0, max([*steps.values(), 1]) * 1.15)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Installment plans: offered, accepted and how they ended")
    ax.set_xlabel("accounts")
    ax.set_ylabel("plan outcome")
    return fig


def _words(name: str) -> str:
    """A field value in words: ``promise_pending`` -> ``promise pending``."""
    return name.replace(":", " ").replace("_", " ")
