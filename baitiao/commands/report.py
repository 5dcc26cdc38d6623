"""``baitiao report OUT``: rebuild the report of a finished run from what it kept in OUT.

report.json holds every figure the report is made of; the headline, the charts,
report.md and report.html are derived from it again, so the way figures are shown can
change without simulating again.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("out_dir", metavar="OUT", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report(out_dir: Path) -> None:
    """Rebuild the headline, charts, report.md and report.html of the run in OUT from its report.json."""
    from rich.console import Console

    from baitiao.simulation.report import write_report
    from baitiao.simulation.summary import print_summary

    source = out_dir / "report.json"
    if not source.exists():
        raise click.ClickException(f"{source} not found: OUT must be the --out of a finished `baitiao simulate`")
    figures = json.loads(source.read_text(encoding="utf-8"))
    for key in ("config", "money", "delinquency", "collections", "plans", "daily_money", "invariants"):
        if key not in figures:
            raise click.ClickException(f"{source} has no {key!r}: not a report of `baitiao simulate`")
    json_path, md_path = write_report(figures, out_dir)
    print_summary(Console(), figures, json_path, md_path)
