"""``baitiao bench``: benchmarks that print ratios against a baseline measured in the same run."""

from __future__ import annotations

import json
from collections.abc import Callable

import click

from shared.settings import get_settings


def own_databases(command: Callable[..., None]) -> Callable[..., None]:
    """``--pg-url`` and ``--keep``: for a benchmark that creates its own databases."""
    command = click.option("--keep", is_flag=True, help="Keep the databases afterwards.")(command)
    return click.option(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        show_default=True,
        help="A PostgreSQL server where the bench may create (and then drop) its databases.",
    )(command)


def portfolio_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--accounts`` and ``--overdue``: the size of a benchmark's generated portfolio."""
    command = click.option(
        "--overdue",
        "overdue_share",
        type=click.FloatRange(0.001, 1),
        default=0.10,
        show_default=True,
        help="Share of accounts overdue.",
    )(command)
    return click.option("--accounts", type=click.IntRange(min=1), default=1_000_000, show_default=True)(command)


@click.group()
def bench() -> None:
    """Benchmarks (figures as ratios to a same-run baseline)."""


@bench.command("bus")
@click.option(
    "-n", "count", type=click.IntRange(min=1), default=20000, show_default=True, help="Events to push through."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=200, show_default=True)
@click.option(
    "--paced", type=click.IntRange(min=1), default=2000, show_default=True, help="Events in the latency phase."
)
@click.option("--db-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/baitiao_bench_bus", show_default=True)
def bench_bus(count: int, batch_size: int, paced: int, db_url: str) -> None:
    """Our batched consumer (with its database work) beside raw kombu on the same Redis."""
    from baitiao.bench_bus import run_bus_benchmark
    from shared.embedded_broker import broker_for_command

    with broker_for_command(get_settings()) as url:
        result = run_bus_benchmark(url, db_url, count, batch_size, paced)
    click.echo(json.dumps(result, indent=2))
    click.echo(
        f"ours {result['ours_per_s']}/s vs raw kombu {result['raw_kombu_per_s']}/s: "
        f"ratio {result['ratio']} (target >= 0.8); p50 {result['latency_p50_ms']} ms, "
        f"p99 {result['latency_p99_ms']} ms at {result['latency_paced_rate_per_s']}/s; "
        f"unsigned {result['unsigned_per_s']}/s (signed/unsigned {result['signed_vs_unsigned']})"
    )


@bench.command("transport")
@click.option("-n", "count", type=click.IntRange(min=1), default=50000, show_default=True, help="Backlog messages.")
@click.option("--batch", type=click.IntRange(min=1), default=500, show_default=True, help="Pipeline and take size.")
@click.option("--rate", type=click.FloatRange(min=1), default=1000.0, show_default=True, help="Paced messages/s.")
@click.option("--paced", "paced_n", type=click.IntRange(min=1), default=5000, show_default=True)
def bench_transport(count: int, batch: int, rate: float, paced_n: int) -> None:
    """The bus's Redis lists beside a Redis Streams consumer group (the transport alone)."""
    from baitiao.bench_transport import run_transport_benchmark
    from shared.embedded_broker import broker_for_command

    with broker_for_command(get_settings()) as url:
        result = run_transport_benchmark(url, count, batch, rate, paced_n)
    click.echo(json.dumps(result, indent=2))
    lists, streams, ratio = result["lists"], result["streams"], result["streams_vs_lists"]
    click.echo(
        f"take+ack: lists {lists['take_ack_us']} us/msg, streams {streams['take_ack_us']} us/msg "
        f"(ratio {ratio['take_ack_us']}); publish: {lists['publish_us']} vs {streams['publish_us']} us/msg "
        f"({ratio['publish_us']}); p99 at {result['paced_rate_per_s']:g}/s: {lists['p99_ms']} vs "
        f"{streams['p99_ms']} ms ({ratio['p99_ms']})"
    )


@bench.command("relay")
@click.option(
    "-n", "count", type=click.IntRange(min=1), default=20000, show_default=True, help="Outbox rows per round."
)
@click.option(
    "--db-url",
    default="postgresql+psycopg://postgres@127.0.0.1:5432/baitiao_bench_relay",
    show_default=True,
    help="A PostgreSQL database the benchmark may drop and recreate.",
)
def bench_relay(count: int, db_url: str) -> None:
    """The outbox relay vs plain kombu publishing of the same rows (microseconds per event)."""
    from baitiao.bench_relay import run_relay_benchmark
    from shared.embedded_broker import broker_for_command

    with broker_for_command(get_settings()) as url:
        result = run_relay_benchmark(url, db_url, count)
    click.echo(json.dumps(result, indent=2))
    click.echo(
        f"relay: {result['ours_us_per_event']} us/event vs plain kombu {result['baseline_us_per_event']} "
        f"us/event: ratio {result['ratio']}; unsigned {result['unsigned_us_per_event']} us/event "
        f"(signing {result['signing_us_per_event']} us/event)"
    )


@bench.command("close")
@portfolio_options
@click.option(
    "--orm-sample",
    type=click.IntRange(min=1),
    default=3000,
    show_default=True,
    help="Bills in the per-bill ORM sample.",
)
@click.option(
    "--db-url",
    default="postgresql+psycopg://postgres@127.0.0.1:5432/baitiao_bench_close",
    show_default=True,
    help="A PostgreSQL database the benchmark may drop and recreate.",
)
def bench_close(accounts: int, overdue_share: float, orm_sample: int, db_url: str) -> None:
    """One daily close of a large portfolio beside a hand-written SQL baseline and an ORM loop."""
    from baitiao.bench_close import main_json, run_close_benchmark

    result = run_close_benchmark(db_url, accounts, overdue_share, orm_sample)
    click.echo(main_json(result))
    click.echo(
        f"close of {accounts:,} accounts: ours {result['ours_s']} s, baseline SQL {result['baseline_sql_s']} s "
        f"(ratio {result['ratio_ours_to_baseline']}, target <= 2); per-bill ORM loop scaled "
        f"{result['orm_loop_scaled_s']} s ({result['ratio_orm_to_ours']}x ours)"
    )


@bench.command("consumers")
@click.option(
    "-n", "count", type=click.IntRange(min=1), default=5000, show_default=True, help="Accounts (events per night)."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=200, show_default=True)
def bench_consumers(count: int, batch_size: int) -> None:
    """Collections' and restructuring's real handlers absorbing a night of delinquency snapshots."""
    from baitiao.bench_consumers import run_consumers_benchmark

    result = run_consumers_benchmark(count, batch_size)
    click.echo(json.dumps(result, indent=2))
    for service in ("collections", "restructuring"):
        steady = result[service]["steady_night_per_s"]
        click.echo(
            f"{service}: {steady}/s steady, {result[service]['first_night_per_s']}/s first night; "
            f"100,000 events in {100_000 / steady:.0f} s of database work (target: 180 s with the transport)"
        )


@bench.command("checkout")
@click.option(
    "--rates",
    default="100,500,1000,2000",
    show_default=True,
    help="Steady rates to offer, requests a second, comma-separated.",
)
@click.option("--seconds", type=click.FloatRange(min=1), default=10, show_default=True, help="Length of each rate.")
@click.option("--burst", type=click.IntRange(min=0), default=10000, show_default=True, help="Requests sent at once.")
@click.option("--accounts", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--generators", type=click.IntRange(min=1), default=2, show_default=True, help="Load processes.")
@own_databases
def bench_checkout(
    rates: str, seconds: float, burst: int, accounts: int, generators: int, pg_url: str, keep: bool
) -> None:
    """Purchase decisions through the real workers beside a raw kombu echo, same Redis."""
    from baitiao.bench_checkout import default_phases, run_checkout_benchmark
    from shared.embedded_broker import broker_for_command

    try:
        steady = [int(r) for r in rates.split(",") if r.strip()]
    except ValueError as exc:
        raise click.BadParameter("rates must be whole numbers, e.g. 100,500") from exc
    phases = default_phases(steady, seconds, burst)
    with broker_for_command(get_settings()) as url:
        result = run_checkout_benchmark(url, pg_url, phases, accounts, generators, keep=keep)
    click.echo(json.dumps(result, indent=2))
    for row in result["phases"]:
        ours, echoed = row.get("ours", {}), row.get("echo", {})
        click.echo(
            f"{row['phase']}: ours p50 {ours.get('p50_ms')} p99 {ours.get('p99_ms')} p99.9 {ours.get('p999_ms')} ms, "
            f"{ours.get('sustained_per_s')}/s; echo p99 {echoed.get('p99_ms')} ms: ratio {row['p99_ratio_to_echo']}"
        )


@bench.command("night")
@portfolio_options
@click.option(
    "--dpd-spread",
    type=click.IntRange(min=1),
    default=120,
    show_default=True,
    help="Overdue accounts are 0 to this many days past due yesterday, evenly.",
)
@click.option(
    "--plans",
    "plan_share",
    type=click.FloatRange(0, 0.5),
    default=0.02,
    show_default=True,
    help="Share of accounts (not overdue) holding an active installment plan.",
)
@click.option(
    "--date",
    "night",
    type=click.Choice(["2026-03-20", "2026-04-01"]),
    default="2026-03-20",
    show_default=True,
    help="The night: a day like any other, or the 1st (statements bill the month, the credit report).",
)
@own_databases
def bench_night(
    accounts: int, overdue_share: float, dpd_spread: int, plan_share: float, night: str, pg_url: str, keep: bool
) -> None:
    """The night's jobs, as beat runs them, through the real workers, until the bus is quiet."""
    from datetime import date

    from baitiao.bench_night import run_night_benchmark
    from shared.embedded_broker import broker_for_command

    with broker_for_command(get_settings()) as url:
        result = run_night_benchmark(
            url,
            pg_url,
            accounts,
            overdue_share,
            dpd_spread,
            plan_share,
            date.fromisoformat(night),
            keep=keep,
            progress=lambda line: click.echo(line, err=True),
        )
    click.echo(json.dumps(result, indent=2))
    for row in result["jobs"]:
        click.echo(
            f"{row['job']} ({row['at']}): job {row['job_s']} s, settled {row['settled_s']} s; "
            f"events {row['events_emitted']}"
        )
    click.echo(
        f"night of {accounts:,} accounts: {result['night_s']} s (target 300 s), "
        f"{result['ratio_night_to_close_baseline']}x the close's SQL baseline ({result['baseline_close_sql_s']} s); "
        f"largest worker process {result['largest_process_mib']} MiB (target 1024)"
    )


@bench.command("desk")
@click.option("--cases", type=click.IntRange(min=1), default=100_000, show_default=True, help="Open collection cases.")
@click.option("--collectors", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--samples", type=click.IntRange(min=1), default=300, show_default=True, help="Requests of each kind of read."
)
@click.option(
    "--rate", type=click.IntRange(min=1), default=500, show_default=True, help="The door's requests a second."
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=1),
    default=5,
    show_default=True,
    help="Length of each turn of the door's load.",
)
@click.option(
    "--turns", type=click.IntRange(min=1), default=3, show_default=True, help="Turns of the bus, then the door."
)
@click.option("--generators", type=click.IntRange(min=1), default=2, show_default=True, help="Load processes.")
@own_databases
def bench_desk(
    cases: int,
    collectors: int,
    samples: int,
    rate: int,
    seconds: float,
    turns: int,
    generators: int,
    pg_url: str,
    keep: bool,
) -> None:
    """The desk's worklists and account pages over many cases, timed by the server beside
    ``/api/me``; the checkout door beside the plain bus round trip, same run."""
    from baitiao.bench_desk import run_desk_benchmark
    from shared.embedded_broker import broker_for_command

    with broker_for_command(get_settings()) as url:
        result = run_desk_benchmark(
            url,
            pg_url,
            cases,
            collectors,
            samples,
            door_rate=rate,
            door_seconds=seconds,
            door_pairs=turns,
            generators=generators,
            keep=keep,
            progress=lambda line: click.echo(line, err=True),
        )
    click.echo(json.dumps(result, indent=2))
    base = result["reads"]["baseline /api/me"]["server"]
    for kind, row in result["reads"].items():
        server = row["server"]
        click.echo(
            f"{kind}: server p50 {server['p50_ms']} p99 {server['p99_ms']} p99.9 {server['p999_ms']} ms "
            f"(target p99 < 100); {row['p99_ratio_to_baseline']}x the baseline's p99 ({base['p99_ms']} ms)"
        )
    door = result["door"]
    click.echo(
        f"checkout door at {door['offered_per_s']}/s: p50 {door['door']['p50_ms']} p99 {door['door']['p99_ms']} ms "
        f"against the bus's {door['bus']['p50_ms']} / {door['bus']['p99_ms']} ms: adds "
        f"{door.get('added_p50_ms')} ms at p50, {door.get('added_p99_ms')} ms at p99 (target < 5)"
    )
