"""A prefork worker's /metrics shows what its job processes recorded (prometheus_client multiprocess mode)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.metrics import private_directory
from tests.deployment.observed import ObservedWorkers
from tests.support.system import ROOT, Databases, fresh_redis_db, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.observability]


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


@pytest.fixture(scope="module")
def prefork(redis_db: int, databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObservedWorkers]:
    log_dir = tmp_path_factory.mktemp("prefork")
    env = {
        "BAITIAO_BROKER_URL": fresh_redis_db(redis_db + 2),
        "BAITIAO_LOG_LEVEL": "WARNING",
        "BAITIAO_DATA_DIR": str(log_dir / "data"),
        **databases.env(),
    }
    workers = ObservedWorkers(env, log_dir, args={"restructuring": ["--pool", "prefork", "--concurrency", "1"]})
    workers.start("restructuring")
    workers.wait_serving("restructuring")
    yield workers
    workers.stop_all()


def test_a_job_run_in_a_pool_process_shows_on_the_workers_metrics(prefork: ObservedWorkers) -> None:
    before = samples(prefork.metrics("restructuring"), "baitiao_job_seconds_count")
    assert (("job_name", "plan-monitor"),) not in before

    for day in ("2026-03-01", "2026-03-02"):
        done = run_cli(["jobs", "run", "plan-monitor", "--date", day, "--timeout", "120"], prefork.env, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr

    text = prefork.metrics("restructuring")
    assert samples(text, "baitiao_job_seconds_count")[(("job_name", "plan-monitor"),)] == 2
    assert samples(text, "baitiao_job_seconds_sum")[(("job_name", "plan-monitor"),)] > 0
    # Recorded by a process other than the worker's own: the pool's job process wrote its file.
    worker_pid = prefork.procs["restructuring"].pid
    files = [p.name for p in private_directory("restructuring", prefork.ports["restructuring"]).glob("*.db")]
    assert any(name.startswith("histogram_") and name != f"histogram_{worker_pid}.db" for name in files), files
    # And the scrape-time gauges of the same endpoint see the job's run row (they are read
    # again at most every 5 s, so the figures of the scrape before the job may still show).
    key = (("job_name", "plan-monitor"), ("service", "restructuring"))
    deadline = time.monotonic() + 15
    while key not in samples(text, "baitiao_job_last_success_business_date_seconds") and time.monotonic() < deadline:
        time.sleep(0.5)
        text = prefork.metrics("restructuring")
    assert samples(text, "baitiao_job_last_success_business_date_seconds")[key] == 1772380800  # 2026-03-02 +08


def test_the_worker_restart_empties_its_metrics_directory(prefork: ObservedWorkers) -> None:
    directory = private_directory("restructuring", prefork.ports["restructuring"])
    (directory / "counter_999999999.db").write_bytes(b"left over from a worker that died")
    prefork.stop_all()
    prefork.start("restructuring")
    text = prefork.wait_serving("restructuring")
    assert not (directory / "counter_999999999.db").exists()
    assert (("job_name", "plan-monitor"),) not in samples(text, "baitiao_job_seconds_count")


def test_no_worker_module_imports_prometheus_client_before_the_worker_chose_its_directory() -> None:
    """The directory must be set before prometheus_client is first imported (shared/metrics.py)."""
    code = (
        "import sys, baitiao.cli; from baitiao import registry; "
        "[registry.celery_app(s) for s in ('accounts', 'collections', 'restructuring')]; "
        "sys.exit(1 if 'prometheus_client' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == 0
