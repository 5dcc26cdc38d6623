"""What a crash of Redis loses under the compose file's own AOF settings.

The compose Redis runs ``--appendonly yes --appendfsync everysec``. Redis writes the
AOF (to the kernel) before it answers a write, so a killed Redis process loses no
acknowledged write under any fsync policy; ``everysec`` bounds only what a crash of
the machine itself loses (the last second the kernel had not flushed), which no test
here can cause. This test SIGKILLs the compose Redis under a stream of acknowledged
writes and restarts it on its AOF: every acknowledged write must be there.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.deployment.compose import load_project
from tests.deployment.stack import REDIS_CONTAINER_PORT, free_port
from tests.deployment.test_compose_stack import user_environment

pytestmark = pytest.mark.deployment


def _start(args: list[str], port: int, directory: Path) -> subprocess.Popen[bytes]:
    """redis-server with the compose command's own arguments (those deploy/redis/start.sh
    passes on; its ACL users play no part in what a crash loses)."""
    assert args[:2] == ["sh", "/etc/baitiao/redis/start.sh"], args
    command = [a if a != REDIS_CONTAINER_PORT else str(port) for a in args[2:]]
    proc = subprocess.Popen(
        [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            *command,
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_connect_timeout=0.5).ping():
                return proc
        except redis.RedisError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("redis did not start")


def test_a_killed_redis_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    args = load_project(user_environment()).services["redis"].command
    assert ["--appendonly", "yes"] == args[args.index("--appendonly") : args.index("--appendonly") + 2]
    port = free_port()
    proc = _start(args, port, tmp_path)
    client = redis.Redis(port=port)
    acknowledged = 0
    try:
        for batch in range(200):
            with client.pipeline(transaction=False) as pipe:
                for n in range(100):
                    pipe.lpush("queue", f"{batch}.{n}")
                pipe.execute()  # answered: these 100 writes are acknowledged
            acknowledged += 100
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc = _start(args, port, tmp_path)
        assert redis.Redis(port=port).llen("queue") == acknowledged
    finally:
        proc.kill()
        proc.wait()
