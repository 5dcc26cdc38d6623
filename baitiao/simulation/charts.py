"""PNG charts of the report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from baitiao.simulation.tally import BUCKETS  # noqa: E402

DELINQUENT = [b for b in BUCKETS if b != "current"]


def draw_all(report: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Draw every chart into ``out_dir/charts``; returns name -> path relative to out_dir."""
    folder = out_dir / "charts"
    folder.mkdir(parents=True, exist_ok=True)
    drawn = {}
    for name, draw in (
        ("buckets", _buckets),
        ("roll_rates", _roll_rates),
        ("cure_rates", _cure_rates),
        ("contacts", _contacts),
        ("plans", _plans),
        ("money", _money),
    ):
        fig = draw(report)
        fig.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        drawn[name] = f"charts/{name}.png"
    return drawn


def _buckets(report: dict[str, Any]) -> Any:
    timeline = report["delinquency"]["timeline"]
    days = list(range(len(timeline)))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.stackplot(days, *[[row[b] for row in timeline] for b in DELINQUENT], labels=DELINQUENT)
    ax.set_title("Accounts by delinquency bucket (max DPD after each daily close)")
    ax.set_ylabel("accounts")
    ticks = days[:: max(1, len(days) // 8)]
    ax.set_xticks(ticks, [timeline[i]["date"] for i in ticks], rotation=30)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def _roll_rates(report: dict[str, Any]) -> Any:
    matrix = report["delinquency"]["roll_rates"]["matrix"]
    data = [[matrix[a]["share"][b] or 0.0 for b in BUCKETS] for a in BUCKETS]
    fig, ax = plt.subplots(figsize=(7.5, 6))
    image = ax.imshow(data, cmap="Reds", vmin=0, vmax=1)
    ax.set_xticks(range(len(BUCKETS)), BUCKETS, rotation=45)
    ax.set_yticks(range(len(BUCKETS)), [f"{b} ({matrix[b]['accounts']})" for b in BUCKETS])
    for i, row in enumerate(data):
        for j, value in enumerate(row):
            if value:
                ax.text(j, i, f"{value:.0%}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("bucket at the next month end")
    ax.set_ylabel("bucket at month end (account-months)")
    ax.set_title("Roll rates between buckets")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def _cure_rates(report: dict[str, Any]) -> Any:
    cure = report["collections"]["cure_rates"]
    stages = list(cure["by_stage"])
    grades = sorted({g for s in cure["by_stage_and_grade"].values() for g in s})
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(len(grades), 1)
    for k, grade in enumerate(grades):
        values = [(cure["by_stage_and_grade"].get(s, {}).get(grade, {}).get("rate") or 0) for s in stages]
        ax.bar([i + k * width for i in range(len(stages))], values, width, label=f"grade {grade}")
    ax.plot(range(len(stages)), [cure["by_stage"][s]["rate"] or 0 for s in stages], "k.--", label="all grades")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(stages))], stages)
    ax.set_ylim(0, 1)
    ax.set_ylabel("cured / entered")
    ax.set_title("Cure rate by collections stage and risk grade")
    ax.legend(fontsize=8)
    return fig


def _contacts(report: dict[str, Any]) -> Any:
    col = report["collections"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    channel = col["contacts_by_channel_status"]
    left.barh(list(channel), list(channel.values()))
    left.set_title("Contacts by channel and status")
    reasons = col["suppressed_by_reason"] or {"(none)": 0}
    right.barh(list(reasons), list(reasons.values()), color="tab:orange")
    right.set_title("Suppressed contacts by reason")
    fig.tight_layout()
    return fig


def _plans(report: dict[str, Any]) -> Any:
    plans = report["plans"]
    labels = {
        **{f"request {k}": v for k, v in plans["offer_requests"].items()},
        **{f"plan {k}": v for k, v in plans["plans_by_status"].items()},
    }
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.barh(list(labels) or ["(none)"], list(labels.values()) or [0], color="tab:green")
    ax.set_title("Restructuring: offer requests and plan outcomes")
    return fig


def _money(report: dict[str, Any]) -> Any:
    money = {k: float(v) for k, v in report["money"].items()}
    shown = [
        "billed",
        "repaid",
        "penalty_charged",
        "waived",
        "late_fees_charged",
        "plan_fees",
        "written_off",
        "outstanding",
    ]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    values = [money[k] for k in shown]
    bars = left.barh(shown, values, color="tab:purple")
    left.set_xscale("symlog", linthresh=100)  # charges are ~1% of what is billed: a linear axis hides them
    left.bar_label(bars, labels=[f"{v:,.2f}" for v in values], fontsize=8, padding=2)
    left.set_title("Money over the run (CNY, log scale)")
    billed = repaid = 0.0
    cum_billed, cum_repaid = [], []
    for row in report["daily_money"]:
        billed += float(row["billed"])
        repaid += float(row["repaid"])
        cum_billed.append(billed)
        cum_repaid.append(repaid)
    right.plot(cum_billed, label="billed (cumulative)")
    right.plot(cum_repaid, label="repaid (cumulative)")
    right.set_xlabel("simulated day")
    right.legend()
    right.set_title("Billed and repaid over time")
    fig.tight_layout()
    return fig
