"""Two runs of one seed under two behaviour mixes, side by side.

Each run keeps its own full report under OUT/<name>/; the comparison takes their
headline figures (cure rate, contacts per cure, loss, delinquency, collected, plans)
and writes them side by side with the difference, B less A: amounts in CNY, counts as
counts, rates in percentage points. comparison.json holds the same rows.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from baitiao.simulation.headline import shown
from baitiao.simulation.report_markdown import table

COMPARED = (
    "cure_rate",
    "contacts_per_cure",
    "net_loss",
    "loss_rate",
    "delinquency_rate",
    "30+",
    "90+",
    "collected_of_billed",
    "balance",
    "penalty_and_fees_charged",
    "waived",
    "cures",
    "plans_accepted",
    "plans_defaulted",
    "contacts_suppressed",
)


def difference(kind: str, a: Any, b: Any) -> str:
    """B less A as a lender reads it: percentage points for rates, CNY for money."""
    if kind == "rate":
        return f"{(float(b) - float(a)) * 100:+.1f} pp"
    if kind == "money":
        return f"{Decimal(str(b)) - Decimal(str(a)):+,.2f}"
    if kind == "number":
        return f"{float(b) - float(a):+,.1f}"
    return f"{int(b) - int(a):+,}"


def compare(runs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The rows of the comparison of two runs (name, report), A first."""
    (name_a, a), (name_b, b) = runs
    rows = []
    for key in COMPARED:
        fa, fb = a["headline"]["figures"][key], b["headline"]["figures"][key]
        rows.append(
            {
                "figure": key,
                "label": fa["label"],
                name_a: fa["value"],
                name_b: fb["value"],
                "difference": difference(fa["kind"], fa["value"], fb["value"]),
                "shown": [shown(fa), shown(fb)],
                "definition": fa["definition"],
            }
        )
    return {
        "runs": [name_a, name_b],
        "seed": a["config"]["seed"],
        "mixes": {name_a: a["config"]["mix"], name_b: b["config"]["mix"]},
        "invariants_hold": {name_a: all(a["invariants"].values()), name_b: all(b["invariants"].values())},
        "rows": rows,
    }


def markdown(comparison: dict[str, Any]) -> str:
    name_a, name_b = comparison["runs"]
    mixes = comparison["mixes"]
    behaviours = list(mixes[name_a])
    parts = [
        f"# Two behaviour mixes compared: {name_a} and {name_b} (seed {comparison['seed']})",
        "",
        f"The same seed and portfolio under two customer mixes; each run's full report is in "
        f"`{name_a}/report.html` and `{name_b}/report.html`. Difference: {name_b} less {name_a} "
        "(rates in percentage points).",
        "",
        table(
            ["figure", name_a, name_b, "difference", "definition"],
            [[r["label"], r["shown"][0], r["shown"][1], r["difference"], r["definition"]] for r in comparison["rows"]],
        ),
        "",
        "## The mixes",
        "",
        table(
            ["behaviour", name_a, name_b],
            [[k, f"{mixes[name_a][k]:.1%}", f"{mixes[name_b].get(k, 0):.1%}"] for k in behaviours],
        ),
        "",
        "Invariants: "
        + ", ".join(f"{n} {'all pass' if ok else 'FAIL'}" for n, ok in comparison["invariants_hold"].items())
        + ".",
        "",
    ]
    return "\n".join(parts)


def write_comparison(comparison: dict[str, Any], out_dir: Path) -> Path:
    """comparison.json and comparison.md in OUT; returns the Markdown path."""
    (out_dir / "comparison.json").write_text(
        json.dumps(comparison, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
    )
    path = out_dir / "comparison.md"
    path.write_text(markdown(comparison), encoding="utf-8")
    return path
