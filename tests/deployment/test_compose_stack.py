"""The compose stack as shipped boots, serves the public contract, scales and stops cleanly.

``docker-compose.yml`` and ``.env.example`` (with its passwords set, the one change the
README asks of a user) are resolved as compose resolves them, and every service's
command is started as a process with its own environment (:mod:`tests.deployment.stack`).
An outside system then speaks only the documented events; operators' commands run with
the ``cli`` service's environment, as ``docker compose run --rm cli …`` would.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest
import redis

from shared.events.signing import verify_text
from tests.deployment.compose import ROOT, env_file, load_project, start_order
from tests.support.signing import SIGNING_KEYS, TEST_RING
from tests.deployment.prometheus import dashboard_queries, running_prometheus
from tests.deployment.stack import Stack, build_image_environment, new_stack_root
from tests.support.customers import credit_line, new_id, purchase, repayment
from tests.support.system import OutsideSystem

pytestmark = pytest.mark.deployment

APP_SERVICES = ("worker-accounts", "worker-collections", "worker-restructuring", "beat")


def user_environment() -> dict[str, str]:
    """``cp .env.example .env``, then every password set and the keys made: all a user must
    change. The keys are the test session's (tests/support/signing.py), so the outside
    systems of these tests sign with the keys the stack verifies."""
    values = env_file(ROOT / ".env.example")
    for key in values:
        if key.endswith("PASSWORD"):
            values[key] = f"pw-{key.lower()}-{new_id('s')}"
        if key.endswith("_SIGNING_KEY"):
            producer = key.removesuffix("_SIGNING_KEY").lower().replace("_", "-")
            values[key] = TEST_RING.signer(producer).text()
    values["BAITIAO_VERIFY_KEYS"] = ",".join(verify_text(SIGNING_KEYS).split())
    return values


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    root = new_stack_root()
    running = Stack(load_project(user_environment()), root, build_image_environment(root / "image"))
    try:
        running.up()
        yield running
    finally:
        running.down()
        shutil.rmtree(root, ignore_errors=True)


def test_up_starts_every_service_in_dependency_order_each_healthy(stack: Stack) -> None:
    order = start_order(stack.project)
    assert order.index("migrate") > max(order.index("redis"), order.index("postgres"))
    assert all(order.index(name) > order.index("migrate") for name in APP_SERVICES)
    assert sorted(r.service for r in stack.running) == sorted(APP_SERVICES)
    assert all(r.proc.poll() is None for r in stack.running)


def test_each_process_gets_only_its_own_secrets(stack: Stack) -> None:
    for running in stack.running:
        env = running.env
        own = running.service.removeprefix("worker-")
        given = {key for key in env if key.endswith("_DB_URL")}
        assert given == ({f"BAITIAO_{own.upper()}_DB_URL"} if running.service != "beat" else set()), running.label
        passwords = [v for v in stack.project.secrets.values() if v]
        leaked = [p for p in passwords if any(p in value for value in env.values())]
        assert leaked == [], f"{running.label} holds a password in its environment"
        mounted = sorted(path.name for path in (stack.secrets_dir / running.service).iterdir())
        wanted = ["redis_password"] + (
            [f"{own}_db_password", f"{own}_signing_key"] if running.service != "beat" else []
        )
        assert mounted == sorted(wanted + (["sms_http_token"] if own == "collections" else [])), running.label


def _outside(stack: Stack) -> OutsideSystem:
    return OutsideSystem(stack.broker_url)


def _cli(stack: Stack, *args: str) -> dict | list:
    done = stack.run("cli", list(args))
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_the_public_contract_end_to_end_and_no_dead_letter(stack: Stack) -> None:
    out = _outside(stack)
    try:
        account = new_id("acc")
        mine = lambda p: p.get("account_id") == account  # noqa: E731
        out.publish("credit.line.granted", credit_line(account, "5000.00", opened_on="2025-06-01"), account)
        out.wait_for("credit.line.opened", mine, timeout=60)
        out.publish("purchase.requested", purchase(account, "1200.00", "2026-02-14T12:00:00+08:00"), account)
        out.wait_for("purchase.approved", mine, timeout=60)

        statements = _cli(stack, "jobs", "run", "statements", "--date", "2026-03-01", "--timeout", "180")
        assert statements["business_date"] == "2026-03-01"
        bill = out.wait_for("bill.issued", mine, timeout=60)[0]["payload"]
        close = _cli(stack, "jobs", "run", "daily-close", "--date", "2026-03-12", "--timeout", "180")
        assert close["business_date"] == "2026-03-12"
        out.wait_for("bill.overdue", mine, timeout=60)

        out.publish("repayment.received", repayment(account, bill["amount"], "2026-03-12T18:00:00+08:00"), account)
        applied = out.wait_for("repayment.applied", mine, timeout=60)[0]["payload"]
        assert applied["account_id"] == account
        out.wait_for("account.cured", mine, timeout=60)

        letters = _cli(stack, "dlq", "list", "--json")
        assert letters == [], letters
    finally:
        out.close()


def test_a_real_prometheus_scrapes_every_worker_and_the_dashboard_has_data(stack: Stack) -> None:
    """deploy/prometheus's rules and deploy/grafana's dashboard against the stack's workers."""
    workers = [r for r in stack.running if r.metrics_port]
    assert {r.service for r in workers} == {"worker-accounts", "worker-collections", "worker-restructuring"}
    out = _outside(stack)
    try:
        account = new_id("acc")
        out.publish("credit.line.granted", credit_line(account, "5000.00"), account)
        out.publish("purchase.requested", purchase(account, "100.00"), account)
        out.wait_for("purchase.approved", lambda p: p.get("account_id") == account, timeout=60)
    finally:
        out.close()
    for job, day in (
        ("plan-monitor", "2026-03-01"),
        ("contact-dispatch", "2026-03-01"),
        ("plan-monitor", "2026-03-02"),
        ("contact-dispatch", "2026-03-02"),
    ):
        _cli(stack, "jobs", "run", job, "--date", day, "--timeout", "120")
    targets = [f"127.0.0.1:{r.metrics_port}" for r in workers]
    with running_prometheus(targets, stack.root / "prometheus") as prometheus:
        assert len(prometheus.wait_targets_up(len(targets))) == len(targets)
        for title, expr in dashboard_queries():
            assert prometheus.wait_until(
                f"data for {title!r}: {expr}", lambda e=expr: prometheus.query(e), timeout=90
            ), (title, expr)


def test_a_second_worker_of_a_service_serves_beside_the_first(stack: Stack) -> None:
    second = stack.start("worker-accounts")
    out = _outside(stack)
    try:
        accounts = [new_id("acc") for _ in range(20)]
        for account in accounts:
            out.publish("credit.line.granted", credit_line(account, "3000.00"), account)
        out.wait_for("credit.line.opened", lambda p: p.get("account_id") in accounts, timeout=90, count=20)
        assert second.proc.poll() is None and second.metrics_port is not None
    finally:
        out.close()


def test_sigterm_stops_every_process_within_its_grace_period_holding_nothing(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.broker_url)
    took = {running.label: stack.stop(running) for running in list(stack.running)}
    grace = {name: stack.project.services[name].stop_grace_s for name in APP_SERVICES}
    assert all(seconds < grace[label.rsplit("-", 1)[0]] for label, seconds in took.items()), took
    held = {key.decode(): client.hlen(key) for key in client.scan_iter("*unacked") if client.type(key) == b"hash"}
    assert all(count == 0 for count in held.values()), held
