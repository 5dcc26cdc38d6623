"""``baitiao simulate``: a seeded portfolio through the real workers and bus, with a report."""

from __future__ import annotations

import signal
import sys
import time
from datetime import date
from pathlib import Path

import click

from baitiao.commands.values import BUSINESS_DATE


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
) -> None:
    """Drive ACCOUNTS customers through DAYS simulated days and write a report.

    Embedded default: SQLite and an embedded Redis under OUT/run-data. With
    BAITIAO_BROKER_URL and BAITIAO_*_DB_URL set: fresh PostgreSQL databases named
    sim_<run>_<service> on that server, and the Redis database of BAITIAO_BROKER_URL,
    which is FLUSHED at start (give it a database of its own, e.g. /13).
    Exit code 1 when an invariant fails. --kill-every turns the run into a fault drill
    (see docs/simulation.md): its figures must equal a calm run's of the same seed.
    """
    from rich.console import Console

    from baitiao.simulation.behaviour import Mix
    from baitiao.simulation.driver import Driver, SimulationConfig
    from baitiao.simulation.faults import KillPlan
    from baitiao.simulation.progress import day_progress
    from baitiao.simulation.report import build_report, write_report
    from baitiao.simulation.summary import print_summary

    from shared.embedded_broker import embedded_broker_running
    from shared.settings import get_settings

    if kill_every is not None and workers_per_service < 2:
        raise click.UsageError(
            "--kill-every needs --workers-per-service 2 or more: a worker is killed only "
            "while another of its service is up"
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
    started = time.perf_counter()
    console.print(f"[bold]simulate[/]: {accounts} accounts, {days} days from {start_date}, seed {seed} -> {out_dir}")
    driver = Driver(config)
    where = driver.run_env.describe()["backend"]
    if driver.run_env.database_prefix:
        where += f", databases {driver.run_env.database_prefix}_*"
    workers = f"{workers_per_service} worker(s) per service" + (
        f", one killed about every {kill_every:g} s" if kill_every is not None else ""
    )
    console.print(f"running on {where}; starting the workers ({workers})...")
    with day_progress(console, days) as hook:
        sim = driver.run(hook)
    report = build_report(sim)
    report["timings"]["report_s"] = round(time.perf_counter() - started - sim.timings.total_s, 2)
    json_path, md_path = write_report(report, out_dir)
    print_summary(Console(), report, json_path, md_path)
    sys.exit(0 if all(report["invariants"].values()) else 1)


def _stop_cleanly_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the run still stops the workers and broker it started."""

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
