"""``baitiao health``: liveness checks for the container healthchecks (exit 0 alive, 1 not).

Also runnable as ``python -m baitiao.liveness worker|beat|api``: the same commands without
loading the rest of the command line (every service's code), a third of a second
instead of more than one, which matters to a check run every few seconds in every
container.

``health worker`` reads the worker's own /metrics (heartbeats only, ``?name[]=``: no
scrape-time gauge runs, no database is queried) and fails when a loop that must keep
polling (the events consumer, the outbox relay) has not gone round for ``--max-age``
seconds: a worker whose process is up but whose consumer is stuck fails it, where a
plain fetch of /metrics would pass.

``health beat`` checks the beat's redbeat lock in Redis. A live beat renews it on every
tick, at most ``beat_max_loop_interval`` seconds apart, setting its time to live back to
``redbeat_lock_timeout`` (redbeat's own extend script); so the lock's remaining life says
when a beat last ticked: ``lock_timeout - ttl`` seconds ago. No lock at all: no beat holds
it (none running, or the last one stopped and released it). A stuck or killed beat's lock
ages until it expires, and the check fails long before a standby beat may take over. It
checks the system's beat, the one holding the lock, not a particular process: a second
beat started by mistake waits on the lock and would not be told apart.
"""

from __future__ import annotations

import sys
import time
import urllib.parse
import urllib.request

import click

from shared.metrics import HEARTBEAT_METRIC, WORKER_LOOPS
from shared.settings import get_settings

FETCH_TIMEOUT_S = 1.5
# shared/beat.py's lock and loop interval, restated here because importing it loads Celery
# and the bus (a test checks that they agree).
BEAT_LOCK_KEY = "baitiao.beat:lock"


def beat_max_loop_interval(lock_timeout: int) -> int:
    """The beat's longest sleep between two ticks (``beat_max_loop_interval`` of shared/beat.py)."""
    return min(30, max(1, lock_timeout // 5))


def heartbeats(url: str) -> dict[tuple[str, str], float]:
    """(service, loop) -> Unix time of the loop's last heartbeat, from a worker's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    parts = urllib.parse.urlsplit(url)
    query = "&".join(filter(None, [parts.query, urllib.parse.urlencode({"name[]": HEARTBEAT_METRIC})]))
    with urllib.request.urlopen(parts._replace(query=query).geturl(), timeout=FETCH_TIMEOUT_S) as response:
        text = response.read().decode("utf-8")
    beats: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == HEARTBEAT_METRIC:
                beats[(sample.labels.get("service", ""), sample.labels.get("loop", ""))] = sample.value
    return beats


def stale_loops(beats: dict[tuple[str, str], float], now: float, max_age: float) -> list[str]:
    """Why the worker is not alive, one line per loop; empty when every loop beat recently."""
    seen = {loop for _, loop in beats}
    problems = [f"{loop}: no heartbeat" for loop in WORKER_LOOPS if loop not in seen]
    for (service, loop), at in sorted(beats.items()):
        if now - at > max_age:
            problems.append(f"{service} {loop}: stale, last heartbeat {now - at:.1f}s ago (max {max_age:g}s)")
    return problems


@click.group()
def health() -> None:
    """Liveness checks for healthchecks: exit 0 when alive, 1 when not (fast, no database)."""


@health.command("worker")
@click.option(
    "--url",
    default=None,
    help="The worker's metrics endpoint [default: http://127.0.0.1:$BAITIAO_METRICS_PORT/metrics, port 9100 if unset].",
)
@click.option("--max-age", default=30.0, show_default=True, help="Seconds a loop may go without a heartbeat.")
def worker(url: str | None, max_age: float) -> None:
    """Alive when the worker's events consumer and outbox relay both went round within MAX_AGE seconds."""
    url = url or f"http://127.0.0.1:{get_settings().metrics_port or 9100}/metrics"
    try:
        beats = heartbeats(url)
    except OSError as exc:
        click.echo(f"unhealthy: cannot read {url}: {exc}")
        sys.exit(1)
    now = time.time()
    problems = stale_loops(beats, now, max_age)
    for problem in problems:
        click.echo(f"unhealthy: {problem}")
    if problems:
        sys.exit(1)
    click.echo(
        "ok: " + ", ".join(f"{service} {loop} {now - at:.1f}s ago" for (service, loop), at in sorted(beats.items()))
    )


@health.command("beat")
@click.option(
    "--max-age",
    default=None,
    type=float,
    help="Seconds since the beat last renewed its lock [default: twice its longest sleep].",
)
def beat(max_age: float | None) -> None:
    """Alive when a beat holds the lock and renewed it within MAX_AGE seconds."""
    import redis

    from shared.broker import broker_client

    settings = get_settings()
    lock_timeout = settings.beat_lock_timeout
    limit = max_age if max_age is not None else 2.0 * beat_max_loop_interval(lock_timeout)
    client = broker_client(
        settings.resolved_broker_url(), settings, socket_timeout=FETCH_TIMEOUT_S, socket_connect_timeout=FETCH_TIMEOUT_S
    )
    try:
        ttl_ms = client.pttl(BEAT_LOCK_KEY)
    except redis.RedisError as exc:
        click.echo(f"unhealthy: cannot read the beat's lock: {exc}")
        sys.exit(1)
    if ttl_ms is None or ttl_ms < 0:
        click.echo(f"unhealthy: no beat holds {BEAT_LOCK_KEY}")
        sys.exit(1)
    age = lock_timeout - ttl_ms / 1000
    if age > limit:
        click.echo(f"unhealthy: the beat last renewed {BEAT_LOCK_KEY} {age:.1f}s ago (max {limit:g}s)")
        sys.exit(1)
    click.echo(f"ok: the beat renewed its lock {max(age, 0.0):.1f}s ago")


@health.command("api")
@click.option(
    "--url", default=None, help="[default: http://127.0.0.1:$BAITIAO_DESK_PORT/api/health, port 8000 if unset]."
)
def api(url: str | None) -> None:
    """Alive when the desk answers its health endpoint with its bus link listening (or none)."""
    import json

    from baitiao.desk.settings import DeskSettings

    url = url or f"http://127.0.0.1:{DeskSettings().port}/api/health"
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            answer = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        click.echo(f"unhealthy: cannot read {url}: {exc}")
        sys.exit(1)
    if answer.get("status") != "ok" or answer.get("bus") == "connecting":
        click.echo(f"unhealthy: {answer}")
        sys.exit(1)
    click.echo(f"ok: bus {answer.get('bus')}")


if __name__ == "__main__":
    health()
