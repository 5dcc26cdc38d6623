"""``baitiao``: start workers and beat, run jobs, migrate, inspect and replay dead letters.

With no ``BAITIAO_BROKER_URL`` set every command uses the embedded default
(SQLite files and an embedded Redis under ``.baitiao/``). The embedded Redis is started
only by the commands that send or consume messages (worker, beat, dlq replay, the
benchmarks), and never left behind: a short command that started it stops it when it
ends, workers and the beat keep it while they run and the last of them to stop ends it,
``broker start`` keeps it until ``broker stop`` (shared/embedded_broker.py). ``jobs run``
and ``status`` never start it. Every failure is one line on stderr
(baitiao/commands/errors.py).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from typing import Any

import click

from baitiao import registry
from baitiao.commands.errors import OperatorGroup, one_line
from baitiao.commands.values import BUSINESS_DATE, LOCAL_TIME
from shared.settings import SERVICES, Settings, get_settings, service_name


def _settings() -> Settings:
    return get_settings()


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@click.group(cls=OperatorGroup)
def main() -> None:
    """Post-lending system of a consumer credit line (accounts, collections, restructuring)."""
    import logging

    from shared.log import configure_logging
    from shared.settings import ConfigurationError

    settings = _settings()
    if not isinstance(logging.getLevelName(settings.log_level.upper()), int):
        raise ConfigurationError(
            f"BAITIAO_LOG_LEVEL={settings.log_level} is not a log level (DEBUG, INFO, WARNING, ERROR)"
        )
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
    for name in tuple(service_name(s) for s in service) or SERVICES:
        upgrade(registry.definition(name), settings.db_url(name))
        click.echo(f"{name}: at head")


# --- processes ----------------------------------------------------------------------------


@main.command()
@click.argument("service", type=click.Choice(SERVICES))
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Job threads (or processes with --pool prefork).",
)
@click.option(
    "--pool",
    type=click.Choice(["threads", "prefork"]),
    default="threads",
    show_default=True,
    help="prefork: jobs in their own processes, so a partitioned job's chains use every core "
    "(PostgreSQL; see BAITIAO_JOB_PARTITIONS).",
)
@click.option("--loglevel", default="WARNING", show_default=True)
def worker(service: str, concurrency: int, pool: str, loglevel: str) -> None:
    """Run one service's worker: its events consumer, outbox relay and job tasks."""
    # SIGTERM (docker stop) as Celery's cold shutdown with its soft timeout: running slices
    # get SOFT_SHUTDOWN_SECONDS (shared/job_timing.py), then are requeued at once. Read by
    # billiard when Celery's worker modules are imported, so before anything imports them.
    os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")
    from shared.db import engine_for
    from shared.embedded_broker import broker_for_command

    settings = _settings()
    settings.rules()  # a bad rules file fails here, in one line, not inside the worker's start
    engine = engine_for(settings.db_url(service_name(service)))  # so does a bad database URL
    with broker_for_command(settings, lifetime=True):  # the embedded broker lives at least as long as it does
        if settings.embedded:
            from shared.migrations import upgrade

            upgrade(registry.definition(service), settings.db_url(service_name(service)))
        with engine.connect():
            pass  # and so does a database that does not answer
        app = registry.celery_app(service)
        app.worker_main(
            [
                "worker",
                "-Q",
                f"{service}.jobs",
                "-n",
                f"{service}@%h",
                "--pool",
                pool,
                "--concurrency",
                str(concurrency),
                "--loglevel",
                loglevel,
                "--without-gossip",
                "--without-mingle",
            ]
        )


@main.command()
@click.option("--loglevel", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run the beat: the Jobs table of EVENTS.md (a second beat waits on the lock)."""
    from shared.beat import make_beat_app
    from shared.embedded_broker import broker_for_command

    settings = _settings()
    with broker_for_command(settings, lifetime=True) as url:
        app = make_beat_app(url, settings.beat_lock_timeout, settings)
        app.start(["beat", "--loglevel", loglevel])


@main.group()
def broker() -> None:
    """The embedded broker (start, stop: only when BAITIAO_BROKER_URL is not set) and the
    deployment's broker users."""


@broker.command("start")
def broker_start() -> None:
    """Start the embedded broker and keep it running until `broker stop` (workers leave it be)."""
    from shared.embedded_broker import keep_embedded_broker

    settings = _settings()
    if not settings.embedded:
        raise click.ClickException("BAITIAO_BROKER_URL is set: there is no embedded broker to start")
    click.echo(keep_embedded_broker(settings))


@broker.command("stop")
def broker_stop() -> None:
    """Shut the embedded broker down (its AOF written first)."""
    from shared.embedded_broker import stop_embedded_broker

    click.echo("stopped" if stop_embedded_broker(_settings()) else "not running")


@broker.command("users")
def broker_users() -> None:
    """Print deploy/redis/users.acl: one user per component, outside producers write-only
    (docs/operations.md, "Redis users")."""
    from shared.bus.broker_users import acl_text

    click.echo(acl_text(), nl=False)


# --- jobs -----------------------------------------------------------------------------------

# How long ``jobs run`` waits for the workers to say which queues they consume: asked
# again a few times, since a worker busy with a slice can be slow to answer once.
WORKER_CHECK_S = 3.0
WORKER_CHECK_TRIES = 3


@main.group()
def jobs() -> None:
    """Scheduled jobs, run by hand for any date."""


@jobs.command("list")
def jobs_list() -> None:
    for name, (service, spec) in registry.all_jobs().items():
        click.echo(f"{name:18} {service:14} {spec.description}")


@jobs.command("run")
@click.argument("name")
@click.option(
    "--date", "business_date", type=BUSINESS_DATE, required=True, help="Business date YYYY-MM-DD (Asia/Shanghai)."
)
@click.option("--at", "at", type=LOCAL_TIME, default=None, help="Local time HH:MM the job runs as (contact-dispatch).")
@click.option(
    "--timeout",
    type=click.IntRange(min=1),
    default=1800,
    show_default=True,
    help="Seconds to wait for the job; a job no worker has started by then never runs.",
)
def jobs_run(name: str, business_date: date, at: str | None, timeout: int) -> None:
    """Send a job through its service's worker and queue, wait, print a JSON summary.

    Refused at once (exit code 1, nothing sent) when no worker consumes the job's queue."""
    from shared.bus.topology import jobs_queue_name
    from shared.embedded_broker import embedded_broker_running
    from shared.job_runner import run_job_and_wait, workers_serving

    try:
        service, spec = registry.all_jobs()[name]
    except KeyError:
        raise click.UsageError(f"unknown job {name!r}; known: {', '.join(registry.all_jobs())}") from None
    settings = _settings()
    queue = jobs_queue_name(service)
    if settings.embedded and not embedded_broker_running(settings):
        raise click.ClickException(
            f"no worker serves {queue}: the embedded broker is not running "
            f"(start `baitiao worker {service}`); nothing sent"
        )
    app = registry.celery_app(service)
    _check_broker(settings.resolved_broker_url())
    if not any(workers_serving(app, queue, WORKER_CHECK_S) for _ in range(WORKER_CHECK_TRIES)):
        raise click.ClickException(
            f"no worker serves {queue} (none answered within "
            f"{WORKER_CHECK_S * WORKER_CHECK_TRIES:g} s; "
            f"start `baitiao worker {service}`); nothing sent"
        )
    day = business_date.isoformat()
    try:
        summary = run_job_and_wait(app, spec.task, service, day, at, timeout, expires=timeout)
    except Exception as exc:  # noqa: BLE001 - the job's outcome: JSON on stdout, one line on stderr
        error = one_line(str(exc)) or type(exc).__name__
        _echo_json({"job": name, "business_date": day, "status": "failed", "error": error})
        click.echo(f"Error: {name} for {day} failed: {error}", err=True)
        sys.exit(1)
    _echo_json({"status": "ok", **summary})


def _check_broker(url: str) -> None:
    """Fail in seconds (kombu's OperationalError) rather than retry for minutes."""
    from shared.broker import broker_connection

    with broker_connection(url, connect_timeout=3) as connection:
        connection.ensure_connection(max_retries=1)


def _register_subcommands() -> None:
    """Service and tool command groups live in their own modules."""
    from baitiao import commands

    for group in commands.GROUPS:
        main.add_command(group)


_register_subcommands()


if __name__ == "__main__":
    main()
