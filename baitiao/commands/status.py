"""``baitiao status``: is the system keeping up? One look per service.

Per service: the messages waiting in its events and jobs queues (Redis lists on the
broker), the events its consumers hold unacked (its own unacked hash, see
``unacked_keys``) and the job messages Celery's workers hold, the outbox rows not yet
published (how many, and how old the oldest is by its ``occurred_at``: under the
simulator's event clock that is simulated time), its open dead letters, and the last
run of each of its jobs (``job_runs``; collections keeps no such table).

It only reads: it never starts the embedded broker (a stopped one is reported as
such) and never creates a database. Exit code 1 when a database or a configured
broker could not be read, 0 otherwise.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Any

import click
import redis
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from baitiao import registry
from baitiao.commands.databases import database_exists, service_engine, sqlite_file
from baitiao.commands.errors import explain, one_line
from shared.broker import broker_client
from shared.bus.kombu_redis import unacked_keys, waiting_lists
from shared.bus.dead_letters import count_open_letters
from shared.bus.topology import events_queue_name, jobs_queue_name
from shared.clock import SHANGHAI
from shared.db import transaction
from shared.settings import SERVICES, ServiceName, Settings, get_settings

# kombu's Redis transport keeps a queue as one list per priority step (kombu.transport.redis).
_CELERY_UNACKED = "unacked"  # the unacked hash of Celery's own (job) connections


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Queue depths, unacked messages, outbox lag, dead letters and last job runs per service."""
    settings = get_settings()
    report = system_status(settings)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    else:
        _print(report)
    failed = report["broker"]["state"] == "unreachable" or any(s.get("error") for s in report["services"])
    sys.exit(1 if failed else 0)


def system_status(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(timezone.utc)
    client, broker = _broker(settings)
    services = []
    configured = settings.configured_db_services()
    for name in SERVICES:
        row: dict[str, Any] = {"service": name, **_queues(client, name)}
        if name in configured:
            row.update(_database(settings, name, now))
        else:  # a worker's container holds its own database only
            row.update({**NO_DATABASE, "database": "not configured in this process"})
        services.append(row)
    return {"at": now.isoformat(), "broker": broker, "services": services}


def _broker(settings: Settings) -> tuple[redis.Redis | None, dict[str, Any]]:
    """A Redis client on the broker, or None with why (never starts the embedded one)."""
    url = settings.resolved_broker_url()
    shown = url.split("@")[-1] if "@" in url else url
    kind = "embedded" if settings.embedded else "configured"
    if not url.startswith(("redis://", "rediss://")):
        return None, {"url": shown, "kind": kind, "state": "not inspected (not a redis:// URL)"}
    client = broker_client(url, settings, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        state = "not running" if settings.embedded else "unreachable"
        return None, {"url": shown, "kind": kind, "state": state, "error": one_line(str(exc))}
    return client, {"url": shown, "kind": kind, "state": "up"}


def queue_depth(client: redis.Redis, queue: str) -> int:
    """Messages waiting in a kombu queue on Redis (all its lists)."""
    keys = waiting_lists(queue)
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.llen(key)
        return int(sum(pipe.execute()))


def jobs_held(client: redis.Redis, queue: str) -> int:
    """Job messages a worker took from ``queue`` and has not acked yet (running, or
    prefetched), from Celery's unacked hash: each entry is [message, exchange, routing key]."""
    held = 0
    for raw in client.hvals(_CELERY_UNACKED):
        try:
            message, _exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        delivery = (message.get("properties") or {}).get("delivery_info") or {}
        if routing_key == queue or delivery.get("routing_key") == queue:
            held += 1
    return held


def _queues(client: redis.Redis | None, service: ServiceName) -> dict[str, Any]:
    if client is None:
        return {"events_queued": None, "events_unacked": None, "jobs_queued": None, "jobs_unacked": None}
    try:
        return {
            "events_queued": queue_depth(client, events_queue_name(service)),
            "events_unacked": int(client.hlen(unacked_keys(service)["unacked_key"])),
            "jobs_queued": queue_depth(client, jobs_queue_name(service)),
            "jobs_unacked": jobs_held(client, jobs_queue_name(service)),
        }
    except redis.RedisError as exc:
        return {
            "events_queued": None,
            "events_unacked": None,
            "jobs_queued": None,
            "jobs_unacked": None,
            "error": f"broker: {one_line(str(exc))}",
        }


NO_DATABASE: dict[str, Any] = {
    "outbox_unpublished": None,
    "outbox_oldest_age_s": None,
    "outbox_oldest_at": None,
    "dead_letters_open": None,
    "jobs": [],
}


def _database(settings: Settings, service: ServiceName, now: datetime) -> dict[str, Any]:
    empty = NO_DATABASE
    if not database_exists(settings, service):
        return {**empty, "database": f"not created ({sqlite_file(settings.db_url(service))})"}
    try:
        engine = service_engine(settings, service)
        return {
            "database": "ok",
            **_outbox_lag(engine, service, now),
            "dead_letters_open": count_open_letters(engine, registry.definition(service).bus.dead_letters),
            "jobs": last_runs(engine, service),
        }
    except (SQLAlchemyError, ValueError) as exc:
        return {**empty, "database": "error", "error": one_line(explain(exc))}


def _outbox_lag(engine: Engine, service: ServiceName, now: datetime) -> dict[str, Any]:
    outbox = registry.definition(service).bus.outbox
    waiting = outbox.c.published_at.is_(None)
    with transaction(engine) as session:
        count = int(session.scalar(select(func.count()).select_from(outbox).where(waiting)) or 0)
        oldest = session.scalar(select(outbox.c.occurred_at).where(waiting).order_by(outbox.c.id).limit(1))
    if oldest is None:
        return {"outbox_unpublished": count, "outbox_oldest_at": None, "outbox_oldest_age_s": None}
    oldest = _aware(oldest)
    return {
        "outbox_unpublished": count,
        "outbox_oldest_at": oldest.isoformat(),
        "outbox_oldest_age_s": round((now - oldest).total_seconds(), 1),
    }


def last_runs(engine: Engine, service: ServiceName) -> list[dict[str, Any]]:
    """Each job's latest run (by business date) from the service's ``job_runs``."""
    definition = registry.definition(service)
    runs = definition.metadata.tables.get("job_runs")
    jobs = []
    for spec in definition.jobs:
        if runs is None:
            jobs.append({"job": spec.name, "last_business_date": None, "status": "not recorded"})
            continue
        with transaction(engine) as session:
            row = session.execute(
                select(runs).where(runs.c.job == spec.name).order_by(runs.c.business_date.desc()).limit(1)
            ).first()
        if row is None:
            jobs.append({"job": spec.name, "last_business_date": None, "status": "never run"})
            continue
        jobs.append(
            {
                "job": spec.name,
                "last_business_date": row.business_date.isoformat(),
                "status": row.status,
                "started_at": _aware(row.started_at).isoformat() if row.started_at else None,
                "finished_at": _aware(row.finished_at).isoformat() if row.finished_at else None,
            }
        )
    return jobs


def _aware(instant: datetime) -> datetime:
    """SQLite keeps no offset: the services write Asia/Shanghai instants (shared/clock.py)."""
    return instant if instant.tzinfo else instant.replace(tzinfo=SHANGHAI)


def _print(report: dict[str, Any]) -> None:
    console = Console()
    broker = report["broker"]
    console.print(f"broker ({broker['kind']}) {broker['url']}: [bold]{broker['state']}[/]")
    table = Table(title=f"Services at {report['at'][:19]}Z (events and jobs: queued / unacked)")
    for column in ("service", "events", "jobs", "outbox", "oldest", "dead", "database"):
        table.add_column(column, justify="left" if column in ("service", "database") else "right")
    for s in report["services"]:
        age = s["outbox_oldest_age_s"]
        table.add_row(
            s["service"],
            f"{_n(s['events_queued'])} / {_n(s['events_unacked'])}",
            f"{_n(s['jobs_queued'])} / {_n(s['jobs_unacked'])}",
            _n(s["outbox_unpublished"]),
            "-" if age is None else f"{age:g} s",
            _n(s["dead_letters_open"]),
            s["database"] if len(s["database"]) < 16 else s["database"].split(" (")[0],
        )
    console.print(table)
    console.print("outbox: events not yet published (oldest: its age); dead: open dead letters")
    for s in report["services"]:
        if s.get("error"):
            console.print(f"[red]{s['service']}[/]: {s['error']}")
    rows = [(s["service"], job) for s in report["services"] for job in s["jobs"]]
    if not rows:
        return
    runs = Table(title="Last job runs")
    for column in ("job", "business date", "status", "finished (Asia/Shanghai)"):
        runs.add_column(column, no_wrap=True)
    for _service, job in rows:
        runs.add_row(job["job"], job["last_business_date"] or "-", job["status"], _minute(job.get("finished_at")))
    console.print(runs)


def _minute(instant: str | None) -> str:
    if not instant:
        return "-"
    return datetime.fromisoformat(instant).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)
