"""Running ``baitiao`` as an operator does: a process of its own, a chosen environment.

The environment starts clean of every ``BAITIAO_`` variable of the test process, so a
test says exactly where its command runs (broker, databases, data directory).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import redis

from tests.support.system import ROOT


def cli_env(**settings: str) -> dict[str, str]:
    """The test process's environment without its BAITIAO_ variables, plus ``settings``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BAITIAO_")}
    return {**clean, **settings}


def run_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "baitiao.cli", *args],
        env=env,
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str] | object, *, contains: str = "", code: int | None = None
) -> str:
    """Exit code non-zero (or ``code``), exactly one line on stderr, no traceback anywhere.
    Returns that line."""
    exit_code = getattr(result, "returncode", getattr(result, "exit_code", None))
    stderr = getattr(result, "stderr", "") or ""
    stdout = getattr(result, "stdout", "") or ""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert exit_code not in (0, None), f"exit code {exit_code}; stderr {stderr!r}"
    if code is not None:
        assert exit_code == code, f"exit code {exit_code}, wanted {code}; stderr {stderr!r}"
    assert "Traceback" not in stderr + stdout, stderr
    assert len(lines) == 1, f"wanted one line on stderr, got {len(lines)}: {stderr!r}"
    assert contains in lines[0], f"{contains!r} not in {lines[0]!r}"
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    """Whether anything accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_redis_on(port: int) -> None:
    """Shut down a Redis a test left running (the test's own cleanup)."""
    if not listening(port):
        return
    try:
        redis.Redis(port=port, socket_connect_timeout=0.5).shutdown(nosave=True)
    except redis.RedisError:
        pass
