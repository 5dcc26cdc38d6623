"""``baitiao``: start workers and beat, run jobs, migrate, inspect and replay dead letters.

With no ``BAITIAO_BROKER_URL`` set every command uses the embedded default
(SQLite files and an embedded Redis under ``.baitiao/``), started on demand.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from baitiao import registry
from shared.settings import SERVICES, Settings, get_settings


def _settings() -> Settings:
    return get_settings()


def _ensure_broker(settings: Settings) -> str:
    from shared.embedded_broker import broker_url

    return broker_url(settings)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@click.group()
def main() -> None:
    """Post-lending system of a consumer credit line (accounts, collections, restructuring)."""
    from shared.log import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, settings.log_json)


# --- database -----------------------------------------------------------------------------

@main.group()
def db() -> None:
    """Database migrations (one database per service)."""


@db.command("upgrade")
@click.option("--service", type=click.Choice(SERVICES), multiple=True, help="Only these services (default: all).")
def db_upgrade(service: tuple[str, ...]) -> None:
    """Bring every service's database to the newest migration."""
    from shared.migrations import upgrade

    settings = _settings()
    for name in service or SERVICES:
        upgrade(registry.definition(name), settings.db_url(name))  # type: ignore[arg-type]
        click.echo(f"{name}: at head")


# --- processes ----------------------------------------------------------------------------

@main.command()
@click.argument("service", type=click.Choice(SERVICES))
@click.option("--concurrency", default=2, show_default=True, help="Job threads (or processes with --pool prefork).")
@click.option("--pool", type=click.Choice(["threads", "prefork"]), default="threads", show_default=True,
              help="prefork: jobs in their own processes, so a partitioned job's chains use every core "
                   "(PostgreSQL; see BAITIAO_JOB_PARTITIONS).")
@click.option("--loglevel", default="WARNING", show_default=True)
def worker(service: str, concurrency: int, pool: str, loglevel: str) -> None:
    """Run one service's worker: its events consumer, outbox relay and job tasks."""
    # SIGTERM (docker stop) as Celery's cold shutdown with its soft timeout: running slices
    # get SOFT_SHUTDOWN_SECONDS (shared/job_timing.py), then are requeued at once. Read by
    # billiard when Celery's worker modules are imported, so before anything imports them.
    os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")
    settings = _settings()
    _ensure_broker(settings)
    if settings.embedded:
        from shared.migrations import upgrade

        upgrade(registry.definition(service), settings.db_url(service))  # type: ignore[arg-type]
    app = registry.celery_app(service)
    app.worker_main([
        "worker", "-Q", f"{service}.jobs", "-n", f"{service}@%h", "--pool", pool,
        "--concurrency", str(concurrency), "--loglevel", loglevel, "--without-gossip", "--without-mingle",
    ])


@main.command()
@click.option("--loglevel", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run the beat: the Jobs table of EVENTS.md (a second beat waits on the lock)."""
    from shared.beat import make_beat_app

    settings = _settings()
    url = _ensure_broker(settings)
    app = make_beat_app(url, settings.beat_lock_timeout)
    app.start(["beat", "--loglevel", loglevel])


@main.group()
def broker() -> None:
    """The embedded broker (only when BAITIAO_BROKER_URL is not set)."""


@broker.command("start")
def broker_start() -> None:
    click.echo(_ensure_broker(_settings()))


@broker.command("stop")
def broker_stop() -> None:
    from shared.embedded_broker import stop_embedded_broker

    click.echo("stopped" if stop_embedded_broker(_settings()) else "not running")


# --- jobs -----------------------------------------------------------------------------------

@main.group()
def jobs() -> None:
    """Scheduled jobs, run by hand for any date."""


@jobs.command("list")
def jobs_list() -> None:
    for name, (service, spec) in registry.all_jobs().items():
        click.echo(f"{name:18} {service:14} {spec.description}")


@jobs.command("run")
@click.argument("name")
@click.option("--date", "business_date", required=True, help="Business date YYYY-MM-DD (Asia/Shanghai).")
@click.option("--at", "at", default=None, help="Local time HH:MM the job runs as (contact-dispatch).")
@click.option("--timeout", default=1800, show_default=True, help="Seconds to wait for the job.")
def jobs_run(name: str, business_date: str, at: str | None, timeout: int) -> None:
    """Send a job through its service's worker and queue, wait, print a JSON summary."""
    from shared.job_runner import run_job_and_wait

    try:
        service, spec = registry.all_jobs()[name]
    except KeyError:
        raise click.UsageError(f"unknown job {name!r}; known: {', '.join(registry.all_jobs())}") from None
    _ensure_broker(_settings())
    try:
        summary = run_job_and_wait(registry.celery_app(service), spec.task, service, business_date, at, timeout)
    except Exception as exc:  # noqa: BLE001 - print why and exit non-zero
        _echo_json({"job": name, "business_date": business_date, "status": "failed", "error": str(exc)})
        sys.exit(1)
    _echo_json({"status": "ok", **summary})


# --- dead letters --------------------------------------------------------------------------

@main.group()
def dlq() -> None:
    """Dead letters: messages that could not be applied, with why."""


@dlq.command("list")
@click.option("--service", type=click.Choice(SERVICES), multiple=True)
@click.option("--all", "include_replayed", is_flag=True, help="Include replayed letters.")
@click.option("--json", "as_json", is_flag=True)
def dlq_list(service: tuple[str, ...], include_replayed: bool, as_json: bool) -> None:
    from shared.bus.dead_letters import list_dead_letters
    from shared.db import engine_for

    settings = _settings()
    rows = []
    for name in service or SERVICES:
        definition = registry.definition(name)
        engine = engine_for(settings.db_url(name))  # type: ignore[arg-type]
        for letter in list_dead_letters(engine, definition.bus.dead_letters, include_replayed):
            rows.append({**letter.__dict__, "id": f"{name}:{letter.id}", "service": name})
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no dead letters")
    for row in rows:
        click.echo(f"{row['id']:18} {str(row['created_at'])[:19]}  {row['type'] or '-':28} {row['reason'][:90]}")


@dlq.command("replay")
@click.argument("letter_id")
def dlq_replay(letter_id: str) -> None:
    """Publish a dead letter (ID as SERVICE:N from `dlq list`) to its queue again."""
    from kombu import Connection

    from shared.bus.dead_letters import replay_dead_letter
    from shared.clock import SystemClock
    from shared.db import engine_for

    try:
        name, number = letter_id.split(":", 1)
        definition = registry.definition(name)
        letter_no = int(number)
    except (ValueError, KeyError):
        raise click.UsageError("ID is SERVICE:N, as `baitiao dlq list` shows it") from None
    settings = _settings()
    url = _ensure_broker(settings)
    with Connection(url) as conn:
        letter = replay_dead_letter(engine_for(settings.db_url(name)), definition.bus.dead_letters,  # type: ignore[arg-type]
                                    letter_no, conn, SystemClock().now())
    click.echo(f"replayed {letter_id} to {letter.queue}")


def _register_subcommands() -> None:
    """Service and tool command groups live in their own modules."""
    from baitiao import commands

    for group in commands.GROUPS:
        main.add_command(group)


_register_subcommands()


if __name__ == "__main__":
    main()
