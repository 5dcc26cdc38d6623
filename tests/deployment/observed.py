"""Workers that serve /metrics (each on a free port), with per-service command-line arguments."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

from baitiao.processes import die_with_parent
from tests.deployment.prometheus import free_port
from tests.support.system import ROOT, Workers


@dataclass
class ObservedWorkers(Workers):
    """``baitiao worker`` processes as :class:`Workers` starts them, plus ``BAITIAO_METRICS_PORT``
    (a free port per service, kept across restarts) and ``args`` (e.g. ``--pool prefork``)."""

    args: dict[str, list[str]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def start(self, service: str, extra_env: dict[str, str] | None = None) -> None:
        port = self.ports.setdefault(service, free_port())
        env = {**os.environ, **self.env, "BAITIAO_METRICS_PORT": str(port), **(extra_env or {})}
        if "BAITIAO_FAULT" not in (extra_env or {}):
            env.pop("BAITIAO_FAULT", None)
        log = open(self.log_dir / f"{service}.log", "ab")
        self.procs[service] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "baitiao.cli",
                "worker",
                service,
                "--loglevel",
                "WARNING",
                *self.args.get(service, []),
            ],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def metrics_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}/metrics"

    def target(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def metrics(self, service: str) -> str:
        with urllib.request.urlopen(self.metrics_url(service), timeout=5) as response:
            return response.read().decode("utf-8")

    def wait_serving(self, service: str, timeout: float = 90.0) -> str:
        """The worker's /metrics once its event bus runs (its heartbeats are there)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.alive(service), (self.log_dir / f"{service}.log").read_text()[-3000:]
            try:
                text = self.metrics(service)
            except OSError:
                text = ""
            if "baitiao_loop_heartbeat_timestamp_seconds{" in text:
                return text
            time.sleep(0.3)
        raise AssertionError(f"{service} serves no heartbeats within {timeout}s")
