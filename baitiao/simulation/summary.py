"""The terminal summary: how the portfolio did (thousands separators, percentages),
then every invariant, pass or fail, and where the reports are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from baitiao.simulation.headline import shown

SHOWN = (
    "accounts",
    "balance",
    "delinquency_rate",
    "30+",
    "60+",
    "90+",
    "roll_current_to_past_due",
    "roll_4_30_to_31_plus",
    "billed",
    "collected",
    "collected_of_billed",
    "penalty_and_fees_charged",
    "waived",
    "net_loss",
    "cure_rate",
    "contacts_per_cure",
    "plans_offered",
    "plans_accepted",
    "plans_completed",
    "plans_defaulted",
    "contacts_suppressed",
    "contacts_outside_window",
)


def print_summary(console: Console, report: dict[str, Any], json_path: Path, md_path: Path) -> None:
    cfg, figures = report["config"], report["headline"]["figures"]
    table = Table(
        title=f"{cfg['accounts']:,} accounts x {cfg['days']} days from {cfg['start_date']}, seed {cfg['seed']}"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in SHOWN:
        table.add_row(figures[key]["label"], shown(figures[key]))
    purchases = report["purchases"]
    table.add_row(
        "Purchases approved / declined",
        f"{purchases.get('approved', 0):,} / {purchases.get('declined', 0):,}",
    )
    table.add_row(
        "SMS sent / calls attempted",
        f"{report['collections']['sms_sent']:,} / {report['collections']['call_attempts']:,}",
    )
    if "faults" in report["environment"]:
        table.add_row("Workers killed (fault drill)", f"{report['environment']['faults']['count']:,}")
    table.add_row(
        "Wall time / simulated days per second",
        f"{report['timings']['total_s']:,} s / {report['speed']['simulated_days_per_s']}",
    )
    console.print(table)
    for sentence in report["headline"]["story"]:
        console.print(sentence)
    checks = Table(title="invariants (engineering checks)")
    checks.add_column("invariant")
    checks.add_column("result")
    for name, ok in report["invariants"].items():
        checks.add_row(name, "[green]pass[/]" if ok else "[red bold]FAIL[/]")
    console.print(checks)
    console.print(f"report: {md_path.parent / 'report.html'}, {md_path} and {json_path}")
