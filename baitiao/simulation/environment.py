"""A fresh system for one run: databases, broker and the workers' processes.

The same seed must give the same numbers, so a run never inherits state:
- embedded default: SQLite files and the embedded Redis live under ``OUT/run-data``
  (wiped at start) on a port of their own;
- PostgreSQL (``BAITIAO_*_DB_URL`` set): three new databases named with a run prefix
  on the same server, migrated before the workers start;
- Redis (``BAITIAO_BROKER_URL``): the configured database, flushed at start. It should
  be a database of its own (e.g. ``redis://host:6379/13``): the flush empties it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from baitiao.processes import die_with_parent
from shared.broker import broker_client
from shared.settings import SERVICES, Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunEnvironment:
    """Where one simulation runs: the environment its workers get, and what to clean up."""

    out_dir: Path
    env: dict[str, str]
    broker_url: str
    db_urls: dict[str, str]
    embedded: bool
    database_prefix: str | None = None
    settings: Settings = field(default_factory=get_settings)

    @property
    def data_dir(self) -> Path:
        return self.out_dir / "run-data"

    def describe(self) -> dict[str, object]:
        """Where it ran, without credentials."""
        return {
            "backend": "embedded (SQLite + embedded Redis)" if self.embedded else "PostgreSQL + Redis",
            "broker": _without_password(self.broker_url),
            "databases": {s: _without_password(u) for s, u in self.db_urls.items()},
        }


def _without_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a redis:// URL is not an SQLAlchemy URL
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_environment(out_dir: Path, use_running_workers: bool) -> RunEnvironment:
    """Build (and empty) the run's databases and broker, or take the running system's."""
    settings = get_settings()
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = (out_dir / "run-data").resolve()
    # Simulated time, and short waits: every phase ends in a quiescence check, so a relay
    # that sleeps 100 ms between polls or a consumer that waits 25 ms to fill a batch
    # would add up to minutes over a run.
    base_env = {
        "BAITIAO_CLOCK": "event",
        "BAITIAO_LOG_LEVEL": os.environ.get("BAITIAO_LOG_LEVEL", "WARNING"),
        "BAITIAO_OUTBOX_POLL_MS": os.environ.get("BAITIAO_OUTBOX_POLL_MS", "50"),
    }
    if use_running_workers:
        db_urls = {s: settings.db_url(s) for s in SERVICES}
        from shared.embedded_broker import broker_url

        return RunEnvironment(out_dir, {**base_env}, broker_url(settings), db_urls, settings.embedded)
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    env = {**base_env, "BAITIAO_DATA_DIR": str(data_dir)}
    if settings.embedded:
        port = _free_port()
        env["BAITIAO_EMBEDDED_BROKER_PORT"] = str(port)
        run_settings = Settings(data_dir=data_dir, embedded_broker_port=port)
        from shared.embedded_broker import ensure_embedded_broker

        url = ensure_embedded_broker(run_settings)
    else:
        url = settings.resolved_broker_url()
        broker_client(url).flushdb()
    prefix = None
    configured = {s: getattr(settings, f"{s}_db_url") for s in SERVICES}
    if all(configured.values()):
        prefix = f"sim_{uuid.uuid4().hex[:8]}"
        db_urls = {
            s: str(make_url(configured[s]).set(database=f"{prefix}_{s}").render_as_string(hide_password=False))
            for s in SERVICES
        }
        # The partitioned jobs go out as two chains, each in a job process of its own
        # (--pool prefork: threads would share one core). SQLite (below) takes one writer
        # at a time, so there the threads pool and one chain stay.
        env["BAITIAO_JOB_PARTITIONS"] = os.environ.get("BAITIAO_JOB_PARTITIONS", "2")
    elif any(configured.values()):
        raise SystemExit("set all three BAITIAO_*_DB_URL or none")
    else:
        db_urls = {s: f"sqlite:///{data_dir / f'{s}.db'}" for s in SERVICES}
    for service, db_url in db_urls.items():
        env[f"BAITIAO_{service.upper()}_DB_URL"] = db_url
    if not settings.embedded:
        env["BAITIAO_BROKER_URL"] = url
    _migrate(db_urls)
    return RunEnvironment(out_dir, env, url, db_urls, settings.embedded, prefix, settings)


def _migrate(db_urls: dict[str, str]) -> None:
    from baitiao import registry
    from shared.migrations import upgrade

    for service, url in db_urls.items():
        upgrade(registry.definition(service), url)


def drop_databases(run: RunEnvironment) -> None:
    """Drop the run's PostgreSQL databases (tests; a user keeps them to look at)."""
    if not run.database_prefix:
        return
    from shared.db import dispose_engines

    dispose_engines()
    admin_url = make_url(next(iter(run.db_urls.values()))).set(database="postgres")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for service in SERVICES:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{run.database_prefix}_{service}" WITH (FORCE)'))
    admin.dispose()


def stop_embedded(run: RunEnvironment) -> None:
    if not run.embedded or "BAITIAO_EMBEDDED_BROKER_PORT" not in run.env:
        return
    from shared.embedded_broker import stop_embedded_broker

    stop_embedded_broker(
        Settings(data_dir=run.data_dir, embedded_broker_port=int(run.env["BAITIAO_EMBEDDED_BROKER_PORT"]))
    )


# What says where a worker runs: replaced by the run's own (other BAITIAO_ settings pass through).
_WHERE_KEYS = {
    "BAITIAO_DATA_DIR",
    "BAITIAO_EMBEDDED_BROKER_PORT",
    "BAITIAO_BROKER_URL",
    "BAITIAO_CLOCK",
    *(f"BAITIAO_{s.upper()}_DB_URL" for s in SERVICES),
}


class WorkerDied(RuntimeError):
    pass


@dataclass
class WorkerProcesses:
    """``python -m baitiao.cli worker <service>``, ``per_service`` of them for each service,
    with the run's environment. A fault drill (``faults.py``) may kill and restart them
    while the driver runs: a lock keeps its swaps apart from the driver's liveness checks."""

    run: RunEnvironment
    concurrency: int = 2
    per_service: int = 1
    procs: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)
    started_at: dict[tuple[str, int], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pool(self) -> str:
        """prefork on PostgreSQL: the jobs' chains (BAITIAO_JOB_PARTITIONS) in processes of
        their own, beside the worker's consumer and relay; threads on SQLite."""
        return "prefork" if self.run.database_prefix else "threads"

    def log_path(self, service: str, index: int) -> Path:
        name = service if self.per_service == 1 else f"{service}-{index}"
        return self.run.data_dir / "logs" / f"{name}.log"

    def start(self) -> None:
        (self.run.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        with self._lock:
            for service in SERVICES:
                self.procs[service] = [self._spawn(service, n) for n in range(self.per_service)]

    def _spawn(self, service: str, index: int) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k not in _WHERE_KEYS}
        env.update(self.run.env)
        with open(self.log_path(service, index), "ab") as log:  # the child gets its own descriptor
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "baitiao.cli",
                    "worker",
                    service,
                    "--loglevel",
                    "WARNING",
                    "--concurrency",
                    str(self.concurrency),
                    "--pool",
                    self.pool,
                ],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.started_at[(service, index)] = time.monotonic()
        return proc

    def killable(self, warm_up_s: float) -> list[tuple[str, int]]:
        """(service, index) of every live worker that another worker of its service, alive
        and started at least ``warm_up_s`` ago, would cover if it were killed now."""
        now = time.monotonic()
        with self._lock:
            found = []
            for service, procs in self.procs.items():
                alive = [i for i, p in enumerate(procs) if p.poll() is None]
                up = {i for i in alive if now - self.started_at[(service, i)] >= warm_up_s}
                found += [(service, i) for i in alive if up - {i}]
            return found

    def kill_and_restart(self, service: str, index: int) -> int:
        """SIGKILL the worker's whole process group (its pool's children too, as a container
        kill would), then start it again; returns the killed pid."""
        with self._lock:
            proc = self.procs[service][index]
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            self.procs[service][index] = self._spawn(service, index)
            return proc.pid

    def check_alive(self) -> None:
        with self._lock:
            for service, procs in self.procs.items():
                for index, proc in enumerate(procs):
                    if proc.poll() is not None:
                        raise WorkerDied(
                            f"the {service} worker exited with {proc.returncode}; see {self.log_path(service, index)}"
                        )

    def stop(self) -> None:
        with self._lock:
            every = [p for procs in self.procs.values() for p in procs]
            for proc in every:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in every:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            self.procs.clear()
