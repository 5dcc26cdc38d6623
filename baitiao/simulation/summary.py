"""The terminal summary: the headline figures and every invariant, pass or fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def print_summary(console: Console, report: dict[str, Any], json_path: Path, md_path: Path) -> None:
    cfg, money = report["config"], report["money"]
    last = report["delinquency"]["timeline"][-1] if report["delinquency"]["timeline"] else {}
    figures = Table(title=f"{cfg['accounts']} accounts x {cfg['days']} days, seed {cfg['seed']}")
    figures.add_column("figure")
    figures.add_column("value", justify="right")
    rows = [
        (
            "purchases approved / declined",
            f"{report['purchases'].get('approved', 0)} / {report['purchases'].get('declined', 0)}",
        ),
        ("bills issued", report["bills"]["issued_events"]),
        ("billed (CNY)", money["billed"]),
        ("repaid (CNY)", money["repaid"]),
        ("penalty charged / reversed", f"{money['penalty_charged']} / {money['penalty_reversed']}"),
        ("late fees charged", money["late_fees_charged"]),
        ("waived", money["waived"]),
        ("written off / recovered", f"{money['written_off']} / {money['recovered']}"),
        ("outstanding", money["outstanding"]),
        (
            "delinquent accounts on the last day",
            sum(v for k, v in last.items() if k not in ("date", "current", "in_plan")),
        ),
        ("accounts in a plan on the last day", last.get("in_plan", 0)),
        ("SMS sent / call attempts", f"{report['collections']['sms_sent']} / {report['collections']['call_attempts']}"),
        ("plans by status", ", ".join(f"{k} {v}" for k, v in report["plans"]["plans_by_status"].items()) or "-"),
        (
            "events published / observed",
            f"{report['events']['published_by_customers']} / {report['events']['observed']}",
        ),
        ("wall time (s)", report["timings"]["total_s"]),
        *(
            [("workers killed (fault drill)", report["environment"]["faults"]["count"])]
            if "faults" in report["environment"]
            else []
        ),
        ("simulated days per second", report["speed"]["simulated_days_per_s"]),
    ]
    for name, value in rows:
        figures.add_row(name, str(value))
    console.print(figures)
    checks = Table(title="invariants")
    checks.add_column("invariant")
    checks.add_column("result")
    for name, ok in report["invariants"].items():
        checks.add_row(name, "[green]pass[/]" if ok else "[red bold]FAIL[/]")
    console.print(checks)
    console.print(f"report: {json_path} and {md_path}")
