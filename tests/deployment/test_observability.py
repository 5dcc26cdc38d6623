"""deploy/prometheus and deploy/grafana against real tools: promtool, and a real Prometheus
scraping the three real workers while they handle events and run jobs.

Select with ``-m observability``. Needs /usr/bin/prometheus and /usr/bin/promtool (CI
installs them); missing, the tests fail rather than skip.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deployment.observed import ObservedWorkers
from tests.deployment.prometheus import (
    DASHBOARD,
    PROMETHEUS_DIR,
    Prometheus,
    dashboard_queries,
    promtool,
    running_prometheus,
)
from tests.support.customers import credit_line, new_id, purchase
from tests.support.system import SERVICES, Databases, OutsideSystem, fresh_redis_db, run_cli

pytestmark = pytest.mark.observability
HERE = Path(__file__).parent


def test_promtool_accepts_the_alert_rules() -> None:
    done = promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(PROMETHEUS_DIR / name, tmp_path / name)
    done = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_alerts_fire_when_they_should_and_only_then() -> None:
    """promtool's rule unit tests (alerts_test.yml): the daily close late after 06:00
    Asia/Shanghai only, a stale heartbeat, a dead letter, a worker down, outbox lag, a queue growing."""
    done = promtool("test", "rules", str(HERE / "alerts_test.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_is_a_grafana_dashboard_with_the_operators_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 30 and dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["targets"], panel["title"]
        assert panel["datasource"]["type"] == "prometheus"
    queries = " ".join(expr for _, expr in dashboard_queries())
    for metric in (
        "baitiao_events_handled_total",
        "baitiao_event_batch_seconds_bucket",
        "baitiao_queue_depth",
        "baitiao_events_unacked",
        "baitiao_outbox_lag_seconds",
        "baitiao_dead_letters_pending",
        "baitiao_job_seconds_bucket",
        "baitiao_job_last_success_timestamp_seconds",
        "baitiao_loop_heartbeat_timestamp_seconds",
    ):
        assert metric in queries, metric


@pytest.fixture(scope="module")
def observed(
    redis_db: int, databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ObservedWorkers, OutsideSystem, Prometheus]]:
    """The three workers (collections with a prefork pool, as in compose), each serving /metrics,
    and a Prometheus scraping them every second with the deployment's alerts."""
    work = tmp_path_factory.mktemp("observed")
    broker_url = fresh_redis_db(redis_db + 3)
    env = {
        "BAITIAO_BROKER_URL": broker_url,
        "BAITIAO_LOG_LEVEL": "WARNING",
        "BAITIAO_DATA_DIR": str(work / "data"),
        **databases.env(),
    }
    workers = ObservedWorkers(env, work, args={"collections": ["--pool", "prefork", "--concurrency", "2"]})
    outside = OutsideSystem(broker_url)
    try:
        workers.start_all()
        for service in SERVICES:
            workers.wait_serving(service)
        with running_prometheus([workers.target(s) for s in SERVICES], work / "prometheus") as prometheus:
            yield workers, outside, prometheus
    finally:
        workers.stop_all()
        outside.close()


def test_every_dashboard_query_returns_data_from_the_running_workers(
    observed: tuple[ObservedWorkers, OutsideSystem, Prometheus],
) -> None:
    workers, outside, prometheus = observed
    targets = prometheus.wait_targets_up(len(SERVICES))
    assert {t["labels"]["job"] for t in targets} == {"baitiao-workers"}

    # A few events through every service, a message no one can read (a dead letter in each
    # service bound to its key), and jobs in two services (one of them in a prefork job process).
    for _ in range(3):
        account = new_id("acc")
        outside.publish("credit.line.granted", credit_line(account, "5000.00"), account)
        outside.publish("purchase.requested", purchase(account, "100.00"), account)
    outside.wait_for("purchase.approved", count=3)
    outside.publish_raw(b"not an envelope", "credit.line.granted")
    for job, day in (
        ("plan-monitor", "2026-03-01"),
        ("contact-dispatch", "2026-03-01"),
        ("plan-monitor", "2026-03-02"),
        ("contact-dispatch", "2026-03-02"),
    ):
        done = run_cli(["jobs", "run", job, "--date", day, "--timeout", "120"], workers.env, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr

    def has_data(expr: str) -> list[dict[str, Any]]:
        return prometheus.query(expr)

    for title, expr in dashboard_queries():
        result = prometheus.wait_until(f"data for {title!r}: {expr}", lambda: has_data(expr), timeout=60)
        assert result, (title, expr)

    # The figures behind them are the real ones.
    handled = prometheus.query("sum(baitiao_events_handled_total)")
    assert float(handled[0]["value"][1]) >= 9  # 3 accounts x (a line in three services, a purchase)
    pending = prometheus.wait_until(
        "dead letters seen", lambda: prometheus.query("max by (service) (baitiao_dead_letters_pending) > 0"), timeout=30
    )
    assert {r["metric"]["service"] for r in pending} == set(SERVICES)

    def slices() -> dict[str, float]:
        return {
            r["metric"]["job_name"]: float(r["value"][1])
            for r in prometheus.query("sum by (job_name) (baitiao_job_seconds_count)")
        }

    # Each run is one slice; contact-dispatch's ran in the collections worker's job processes.
    prometheus.wait_until(
        "both runs of each job scraped", lambda: slices() == {"plan-monitor": 2, "contact-dispatch": 2}, timeout=30
    )
    # The scrape-time gauges are read again at most every 5 s: the second date shows soon.
    prometheus.wait_until(
        "plan-monitor's last business date 2026-03-02",
        lambda: [
            r
            for r in prometheus.query('baitiao_job_last_success_business_date_seconds{job_name="plan-monitor"}')
            if float(r["value"][1]) == 1772380800
        ],
        timeout=30,
    )  # 2026-03-02 00:00 Asia/Shanghai
    heartbeat_age = prometheus.query("max(time() - baitiao_loop_heartbeat_timestamp_seconds)")
    assert 0 <= float(heartbeat_age[0]["value"][1]) < 10


def test_the_rules_evaluate_against_the_live_series(
    observed: tuple[ObservedWorkers, OutsideSystem, Prometheus],
) -> None:
    """Every rule evaluates without error on the workers' series, and the dead letters of the
    test above make the dead-letter alert pending (its 1-minute hold not yet over) or firing."""
    _, _, prometheus = observed

    def evaluated() -> list[dict[str, Any]]:
        rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        return rules if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules) else []

    rules = prometheus.wait_until("rules evaluated", evaluated, timeout=30)
    assert len(rules) == 8 and all(rule["health"] == "ok" for rule in rules), rules
    alerts = prometheus.wait_until(
        "the dead-letter alert",
        lambda: [a for a in prometheus.api("alerts")["alerts"] if a["labels"]["alertname"] == "BaitiaoDeadLetter"],
        timeout=30,
    )
    assert {a["labels"]["service"] for a in alerts} == set(SERVICES)
    assert all(a["state"] in ("pending", "firing") for a in alerts)
    quiet = {a["labels"]["alertname"] for a in prometheus.api("alerts")["alerts"]} & {
        "BaitiaoWorkerDown",
        "BaitiaoLoopHeartbeatStale",
        "BaitiaoOutboxLag",
        "BaitiaoServiceGaugesFailing",
    }
    assert quiet == set(), quiet
    assert not math.isnan(float(prometheus.query("count(up == 1)")[0]["value"][1]))
