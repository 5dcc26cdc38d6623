"""A real Prometheus for tests: deploy/prometheus's config pointed at running workers, queried over HTTP.

``running_prometheus(targets, work_dir)`` starts ``/usr/bin/prometheus`` on a free loopback
port with the deployment's own prometheus.yml, its scrape jobs' targets replaced by the
given ``host:port`` list (and a one-second scrape interval), and the deployment's alerts.
``dashboard_queries()`` lists every PromQL expression of the Grafana dashboard, Grafana's
interval variables replaced by fixed windows, for ``Prometheus.query``. The compose
deployment test uses the same functions against its own processes.

The binaries are required, not optional: CI installs them (``apt-get install -y
--no-install-recommends prometheus``), and a missing one fails the test.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "baitiao-dashboard.json"
# Grafana's own variables, as a query over a short test run can use them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def binary(name: str) -> str:
    """The path of a Prometheus binary (``prometheus``, ``promtool``); fails when it is missing."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        raise AssertionError(f"{name} is not installed: apt-get install -y --no-install-recommends prometheus")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, timeout=60)


def config_for(targets: list[str], rules: Path, scrape_interval: str = "1s") -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with every scrape job's targets set to ``targets``."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(
        scrape_interval=scrape_interval, scrape_timeout=scrape_interval, evaluation_interval=scrape_interval
    )
    config["rule_files"] = [str(rules)]
    for job in config["scrape_configs"]:
        for key in [k for k in job if k.endswith("_sd_configs") or k == "static_configs"]:
            del job[key]
        job["static_configs"] = [{"targets": list(targets)}]
    return config


@dataclass
class Prometheus:
    """A running Prometheus's HTTP API."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (a scalar comes back as one sample)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])

    def wait_until(self, what: str, check: Callable[[], T], timeout: float = 60.0) -> T:
        deadline = time.monotonic() + timeout
        last: T | OSError | None = None
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"prometheus exited: {self.log.read_text()[-2000:]}"
            try:
                result = check()
            except OSError as exc:  # not listening yet
                last = exc
            else:
                if result:
                    return result
                last = result
            time.sleep(0.5)
        raise AssertionError(f"{what} not within {timeout}s; last: {last}")

    def wait_targets_up(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        def all_up() -> list[dict[str, Any]]:
            targets = self.targets()
            return targets if len(targets) == count and all(t["health"] == "up" for t in targets) else []

        return self.wait_until(f"{count} targets up", all_up, timeout)


@contextmanager
def running_prometheus(
    targets: list[str], work_dir: Path, rules: Path = PROMETHEUS_DIR / "alerts.yml", scrape_interval: str = "1s"
) -> Iterator[Prometheus]:
    """Prometheus on a free loopback port scraping ``targets`` (host:port), stopped afterwards."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / "prometheus.yml"
    config.write_text(yaml.safe_dump(config_for(targets, rules, scrape_interval)))
    port = free_port()
    log = work_dir / "prometheus.log"
    process = subprocess.Popen(
        [
            binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        prometheus.wait_until(
            "prometheus ready", lambda: urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2).status == 200
        )
        yield prometheus
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def dashboard_queries(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, rows' panels included, with
    Grafana's interval variables replaced (:data:`GRAFANA_VARIABLES`)."""

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in items:
            yield item
            yield from panels(item.get("panels", []))

    queries = []
    for panel in panels(json.loads(path.read_text())["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((panel["title"], expr))
    return queries
