"""Private PostgreSQL and Redis servers a test may stop, kill and start again for real.

The machine's own PostgreSQL (5432) and Redis serve every other test and must never be
stopped; an outage test gets servers of its own instead, on free ports, in a temporary
directory, and takes them away like an operator or a crash would:

- :class:`PrivatePostgres`: a cluster made with Debian's ``initdb`` and run with
  ``pg_ctl`` (as the ``postgres`` user when the test runs as root), stopped with
  ``pg_ctl stop -m fast`` (what a container stop or a service restart does: every
  session is terminated) and started again on the same directory and port;
- :class:`PrivateRedis`: ``redis-server`` with ``--appendonly yes --appendfsync
  everysec`` (the compose file's settings), killed with SIGKILL and started again on its
  AOF;
- :class:`PurchaseStream`: the outside world's steady stream of ``purchase.requested``
  at a fixed rate, published and observed through :class:`OutsideSystem`, with a
  producer that retries a failed publish with the same ``event_id`` (what the README
  asks of outside producers) and an observer that attaches again after a broker restart.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, text

from tests.support.customers import credit_line, new_id, purchase
from tests.support.system import OutsideSystem, envelope


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin(program: str) -> str:
    """A PostgreSQL server program; an AssertionError (a failure, not a skip) if absent."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
    path = found[-1] if found else shutil.which(program)
    if not path:
        raise AssertionError(
            f"{program} not found (apt-get install postgresql): the outage tests need a PostgreSQL cluster of their own"
        )
    return path


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, stopped and started for real."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bt-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._run(
            [
                postgres_bin("initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )

    @property
    def base(self) -> str:
        """The SQLAlchemy URL of the server without a database (``Databases(base=...)``)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def _run(self, command: list[str]) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        done = subprocess.run(prefix + command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"{command[0]} failed: {done.stdout}\n{done.stderr}")

    def start(self) -> float:
        """Start (or start again) and wait until it accepts connections; returns the seconds it took."""
        started = time.monotonic()
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            [
                postgres_bin("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        return time.monotonic() - started

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` terminates every session (a restart), ``immediate`` is a crash."""
        self._run([postgres_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])

    def accepts(self) -> bool:
        try:
            engine = create_engine(f"{self.base}/postgres", connect_args={"connect_timeout": 2})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            return True
        except Exception:  # noqa: BLE001 - any failure is "not accepting"
            return False

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except AssertionError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A redis-server of the test's own, on its AOF; SIGKILLed and started again."""

    def __init__(self, port: int | None = None, appendonly: bool = True):
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bt-redis-"))
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> float:
        started = time.monotonic()
        durability = ["--appendonly", "yes", "--appendfsync", "everysec"] if self.appendonly else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "/usr/bin/redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                *durability,
                "--daemonize",
                "no",
            ],
            stdout=open(self.dir / "server.log", "ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.5).ping():
                    return time.monotonic() - started
            except redis.RedisError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final AOF rewrite, exactly what a crash leaves."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def destroy(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


# The observer's own unacked bookkeeping with a short visibility timeout: a reply it had
# taken but not acked when the broker was killed comes back to it after the restart.
# (Keys of its own: the default ``unacked`` hash holds Celery's job messages.)
OBSERVER_OPTIONS = {
    "visibility_timeout": 5,
    "unacked_key": "test.observer.unacked",
    "unacked_index_key": "test.observer.unacked_index",
    "unacked_mutex_key": "test.observer.unacked_mutex",
}

REPLIES = ("purchase.approved", "purchase.declined")


@dataclass
class PurchaseStream:
    """``purchase.requested`` at ``rate`` per second over ``accounts``, with the replies seen."""

    broker_url: str
    accounts: list[str]
    rate: float = 5.0
    amount: str = "10.00"
    outside: OutsideSystem | None = None
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # purchase_id -> its envelope
    sent_at: dict[str, float] = field(default_factory=dict)
    first_reply_at: dict[str, float] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)  # every event observed, across reconnects
    publish_retries: int = 0
    _next: int = 0
    _seen: int = 0

    def connect(self) -> None:
        """Attach (again) to the bus; the observer queue keeps its name across reconnects."""
        name = self.outside.observer.name if self.outside else None
        if self.outside is not None:
            try:
                self.outside.conn.close()
            except Exception:  # noqa: BLE001 - a connection to a killed broker
                pass
        deadline = time.monotonic() + 60
        while True:
            try:
                self.outside = OutsideSystem(self.broker_url, observer=name, transport_options=OBSERVER_OPTIONS)
                self.outside.seen = self.seen
                return
            except Exception:  # noqa: BLE001 - the broker is still coming back
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def open_accounts(self, count: int, limit: str = "100000.00") -> None:
        assert self.outside is not None
        for _ in range(count):
            account = new_id("acc")
            self.accounts.append(account)
            self.outside.publish("credit.line.granted", credit_line(account, limit), account)
        self.outside.wait_for(
            "credit.line.opened", lambda p: p["account_id"] in self.accounts, timeout=120, count=count
        )

    def run(self, seconds: float) -> None:
        """Send at ``rate`` for ``seconds`` while observing the replies."""
        assert self.outside is not None
        end = time.monotonic() + seconds
        gap = 1.0 / self.rate
        next_send = time.monotonic()
        while time.monotonic() < end:
            if time.monotonic() >= next_send:
                self._send_one()
                next_send += gap
            self._pump(max(0.0, min(next_send, end) - time.monotonic()))

    def observe(self, seconds: float) -> None:
        """Only watch the bus (nothing sent) for ``seconds``."""
        self._pump(seconds)

    def _send_one(self) -> None:
        account = self.accounts[self._next % len(self.accounts)]
        self._next += 1
        body = envelope("purchase.requested", purchase(account, self.amount), account)
        self.sent[body["payload"]["purchase_id"]] = body
        self.sent_at[body["payload"]["purchase_id"]] = time.monotonic()
        self._publish(body)

    def _publish(self, body: dict[str, Any]) -> None:
        """A failed publish means nothing was stored, or nobody knows: send it again, with the
        same event_id, until the broker answers (the inbox makes a second copy harmless)."""
        while True:
            try:
                assert self.outside is not None
                self.outside.publish_raw(body, "purchase.requested")
                return
            except Exception:  # noqa: BLE001 - kombu raises when the broker is away
                self.publish_retries += 1
                time.sleep(0.2)
                self.connect()

    def _pump(self, seconds: float) -> None:
        assert self.outside is not None
        try:
            self.outside.pump(max(seconds, 0.01))
        except Exception:  # noqa: BLE001 - the broker went away under the observer
            time.sleep(0.2)
            self.connect()
        now = time.monotonic()
        for event in self.seen[self._seen :]:
            if event.get("type") in REPLIES:
                self.first_reply_at.setdefault(event["payload"]["purchase_id"], now)
        self._seen = len(self.seen)

    def wait_for_every_reply(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not set(self.sent) <= set(self.first_reply_at):
            self._pump(0.2)

    def replies(self) -> dict[str, set[str]]:
        """purchase_id -> the distinct event_ids of the replies seen for it."""
        found: dict[str, set[str]] = defaultdict(set)
        for event in self.seen:
            if event.get("type") in REPLIES:
                found[event["payload"]["purchase_id"]].add(event["event_id"])
        return found

    def close(self) -> None:
        if self.outside is not None:
            try:
                self.outside.close()
            except Exception:  # noqa: BLE001 - best effort at the end of a test
                pass
