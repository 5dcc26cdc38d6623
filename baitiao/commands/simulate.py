"""``baitiao simulate``: a seeded portfolio through the real workers and bus, with a report."""

from __future__ import annotations

import signal
import sys
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from baitiao.commands.values import BUSINESS_DATE

if TYPE_CHECKING:
    from rich.console import Console

    from baitiao.simulation.driver import SimulationConfig


@click.command()
@click.option(
    "--accounts", type=click.IntRange(min=1), default=2000, show_default=True, help="Accounts in the portfolio."
)
@click.option("--days", type=click.IntRange(min=1), default=180, show_default=True, help="Simulated days.")
@click.option("--seed", default=1, show_default=True, help="Same seed, same numbers.")
@click.option(
    "--out",
    "out_dir",
    default="./simulation-out",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Report directory; the run's databases go under OUT/run-data (wiped at start).",
)
@click.option(
    "--start-date", type=BUSINESS_DATE, default="2026-01-01", show_default=True, help="First simulated business date."
)
@click.option(
    "--mix",
    "mix_file",
    default=None,
    type=click.Path(exists=True, path_type=Path),
    help="YAML/JSON file overriding shares of the behaviour mix (e.g. {on_time: 0.5, stops_paying: 0.1}).",
)
@click.option(
    "--use-running-workers",
    is_flag=True,
    help="Drive workers already running (started with BAITIAO_CLOCK=event) on the configured "
    "databases and broker, instead of fresh ones; numbers then include what was there.",
)
@click.option(
    "--workers-per-service",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes started for each service (all consume its queues, as replicas would).",
)
@click.option(
    "--kill-every",
    "kill_every",
    type=click.FloatRange(min=1, min_open=False),
    default=None,
    metavar="SECONDS",
    help="Fault drill: SIGKILL one of the run's workers about every SECONDS (jittered) and restart it "
    "at once, never one whose service has no other worker up; needs --workers-per-service 2 "
    "or more. The report lists the kills under environment.faults. Off by default.",
)
@click.option("--kill-seed", type=int, default=None, help="Seed of the drill's victims and pauses (default: --seed).")
@click.option(
    "--compare",
    "compare_files",
    nargs=2,
    default=None,
    metavar="MIX_A MIX_B",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Run the same seed under two behaviour mixes (YAML/JSON files as --mix takes), one after the "
    "other, each with its full report in OUT/<name>/, and write OUT/comparison.md and comparison.json: "
    "cure rate, contacts per cure, loss and more side by side.",
)
def simulate(
    accounts: int,
    days: int,
    seed: int,
    out_dir: Path,
    start_date: date,
    mix_file: Path | None,
    use_running_workers: bool,
    workers_per_service: int,
    kill_every: float | None,
    kill_seed: int | None,
    compare_files: tuple[Path, Path] | None,
) -> None:
    """Drive ACCOUNTS customers through DAYS simulated days and write a report.

    Embedded default: SQLite and an embedded Redis under OUT/run-data. With
    BAITIAO_BROKER_URL and BAITIAO_*_DB_URL set: fresh PostgreSQL databases named
    sim_<run>_<service> on that server, and the Redis database of BAITIAO_BROKER_URL,
    which is FLUSHED at start (give it a database of its own, e.g. /13).
    Exit code 1 when an invariant fails. --kill-every turns the run into a fault drill
    (see docs/simulation.md): its figures must equal a calm run's of the same seed.
    --compare runs two mixes and compares them.
    """
    from rich.console import Console

    from baitiao.simulation.behaviour import Mix
    from baitiao.simulation.driver import SimulationConfig
    from baitiao.simulation.faults import KillPlan

    from shared.embedded_broker import embedded_broker_running
    from shared.settings import get_settings

    if kill_every is not None and workers_per_service < 2:
        raise click.UsageError(
            "--kill-every needs --workers-per-service 2 or more: a worker is killed only "
            "while another of its service is up"
        )
    if compare_files is not None and (mix_file is not None or use_running_workers):
        raise click.UsageError(
            "--compare takes the two mixes itself and needs fresh runs: not with --mix or --use-running-workers"
        )
    if (kill_every is not None or workers_per_service > 1) and use_running_workers:
        raise click.UsageError(
            "--workers-per-service and --kill-every act on the workers the run starts, not with --use-running-workers"
        )
    settings = get_settings()
    if use_running_workers and settings.embedded and not embedded_broker_running(settings):
        raise click.ClickException(
            "--use-running-workers: the embedded broker is not running, so no worker is; "
            "start the workers first (BAITIAO_CLOCK=event)"
        )
    console = Console(stderr=True)
    config = SimulationConfig(
        accounts=accounts,
        days=days,
        seed=seed,
        out_dir=out_dir,
        start_date=start_date,
        mix=Mix.load(mix_file),
        use_running_workers=use_running_workers,
        workers_per_service=workers_per_service,
        kills=KillPlan(kill_every, seed if kill_seed is None else kill_seed) if kill_every is not None else None,
    )
    _stop_cleanly_on_sigterm()
    if compare_files is None:
        report = _run(console, config)
        sys.exit(0 if all(report["invariants"].values()) else 1)
    sys.exit(_compare(console, config, compare_files))


def _run(console: Console, config: SimulationConfig) -> dict[str, Any]:
    """One run: simulate, write its report under config.out_dir, print its summary."""
    from rich.console import Console as Terminal

    from baitiao.simulation.driver import Driver
    from baitiao.simulation.progress import day_progress
    from baitiao.simulation.report import build_report, write_report
    from baitiao.simulation.summary import print_summary

    started = time.perf_counter()
    console.print(
        f"[bold]simulate[/]: {config.accounts} accounts, {config.days} days from {config.start_date}, "
        f"seed {config.seed} -> {config.out_dir}"
    )
    driver = Driver(config)
    where = driver.run_env.describe()["backend"]
    if driver.run_env.database_prefix:
        where += f", databases {driver.run_env.database_prefix}_*"
    kill_every = config.kills.every_s if config.kills is not None else None
    workers = f"{config.workers_per_service} worker(s) per service" + (
        f", one killed about every {kill_every:g} s" if kill_every is not None else ""
    )
    console.print(f"running on {where}; starting the workers ({workers})...")
    with day_progress(console, config.days) as hook:
        sim = driver.run(hook)
    report = build_report(sim)
    report["timings"]["report_s"] = round(time.perf_counter() - started - sim.timings.total_s, 2)
    json_path, md_path = write_report(report, config.out_dir)
    print_summary(Terminal(), report, json_path, md_path)
    return report


def _compare(console: Console, config: SimulationConfig, files: tuple[Path, Path]) -> int:
    """Both mixes on the same seed, one after the other; 1 if an invariant fails in either."""
    from dataclasses import replace

    from rich.console import Console as Terminal
    from rich.table import Table

    from baitiao.simulation.behaviour import Mix
    from baitiao.simulation.comparison import compare, write_comparison

    names = [f.stem for f in files]
    if names[0] == names[1]:
        names = [f"a-{names[0]}", f"b-{names[1]}"]
    runs = []
    for name, mix_file in zip(names, files):
        console.print(f"[bold]--compare[/]: mix {name} ({mix_file})")
        report = _run(console, replace(config, mix=Mix.load(mix_file), out_dir=config.out_dir / name))
        runs.append((name, report))
    comparison = compare(runs)
    path = write_comparison(comparison, config.out_dir)
    table = Table(title=f"{names[0]} and {names[1]}, seed {config.seed}")
    for column in ("figure", names[0], names[1], "difference"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for row in comparison["rows"]:
        table.add_row(row["label"], row["shown"][0], row["shown"][1], row["difference"])
    terminal = Terminal()
    terminal.print(table)
    terminal.print(f"comparison: {path} and {path.with_suffix('.json')}")
    return 0 if all(comparison["invariants_hold"].values()) else 1


def _stop_cleanly_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the run still stops the workers and broker it started."""

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
