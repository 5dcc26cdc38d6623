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
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from kombu import Connection, Producer

from baitiao.desk.commands import PRODUCERS
from shared.bus.outside_producer import publish_signed

from shared.events.signing import verify_text
from tests.deployment.compose import ROOT, env_file, load_project, start_order
from tests.support.signing import SIGNING_KEYS, TEST_RING
from tests.deployment.prometheus import dashboard_queries, running_prometheus
from tests.deployment.stack import Stack, build_image_environment, new_stack_root
from tests.support.customers import credit_line, new_id, purchase, repayment
from tests.support.system import OutsideSystem, envelope

pytestmark = pytest.mark.deployment

APP_SERVICES = ("worker-accounts", "worker-collections", "worker-restructuring", "beat", "api")
CHECKOUT_TOKEN = f"checkout-{new_id('t')}"
# What each app service is given: the databases it reaches, the secrets mounted for it.
GIVEN: dict[str, tuple[set[str], set[str]]] = {
    "worker-accounts": ({"ACCOUNTS"}, {"redis_accounts_password", "accounts_db_password", "accounts_signing_key"}),
    "worker-collections": (
        {"COLLECTIONS"},
        {"redis_collections_password", "collections_db_password", "collections_signing_key", "sms_http_token"},
    ),
    "worker-restructuring": (
        {"RESTRUCTURING"},
        {"redis_restructuring_password", "restructuring_db_password", "restructuring_signing_key"},
    ),
    "beat": (set(), {"redis_beat_password"}),
    "api": (
        {"ACCOUNTS", "COLLECTIONS", "RESTRUCTURING", "DESK"},
        {"redis_desk_password", "desk_db_password", "desk_session_secret", "desk_checkout_token", "desk_signing_keys"},
    ),
}


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
    values["DESK_SIGNING_KEYS"] = ",".join(TEST_RING.signer(p).text() for p in sorted(set(PRODUCERS.values())))
    values["BAITIAO_VERIFY_KEYS"] = ",".join(verify_text(SIGNING_KEYS).split())
    values["BAITIAO_DESK_CHECKOUT_TOKEN"] = CHECKOUT_TOKEN
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
        databases, secrets = GIVEN[running.service]
        given = {key for key in env if key.endswith("_DB_URL")}
        assert given == {f"BAITIAO_{name}_DB_URL" for name in databases}, running.label
        passwords = [v for v in stack.project.secrets.values() if v]
        leaked = [p for p in passwords if any(p in value for value in env.values())]
        assert leaked == [], f"{running.label} holds a password in its environment"
        mounted = {path.name for path in (stack.secrets_dir / running.service).iterdir()}
        assert mounted == secrets, running.label


def _outside(stack: Stack) -> OutsideSystem:
    """An outside system as the administrator, its observer a tap (``tap.*``: a queue every
    outside producer may push a copy onto, shared/bus/broker_users.py)."""
    return OutsideSystem(stack.broker_url, observer=f"tap.observer.{new_id('o')}")


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


def test_the_desk_answers_the_checkout_and_its_users_through_the_bus(stack: Stack) -> None:
    """The api service: the checkout door decides a purchase through the workers, a user
    added with ``docker compose run --rm api desk user add`` logs in, reads the account
    and sends a command whose outcome comes back from the service that owns it."""
    desk = next(r for r in stack.running if r.service == "api")
    password = f"pw-{new_id('u')}"
    added = stack.run(
        "api", ["desk", "user", "add", "ops", "--role", "operator"], extra_env={"BAITIAO_DESK_PASSWORD": password}
    )
    assert added.returncode == 0, added.stdout + added.stderr
    out = _outside(stack)
    account = new_id("acc")
    try:
        out.publish("credit.line.granted", credit_line(account, "5000.00"), account)
        out.wait_for("credit.line.opened", lambda p: p.get("account_id") == account, timeout=60)
    finally:
        out.close()
    with httpx.Client(base_url=f"http://127.0.0.1:{desk.desk_port}", timeout=30) as http:
        checkout = {"Authorization": f"Bearer {CHECKOUT_TOKEN}"}
        decided = http.post("/api/purchases", json=purchase(account, "300.00"), headers=checkout)
        assert decided.status_code == 200 and decided.json()["decision"] == "approved", decided.text
        token = http.post("/api/login", json={"username": "ops", "password": password}).json()["token"]
        staff = {"Authorization": f"Bearer {token}"}
        view = http.get(f"/api/accounts/{account}", headers=staff)
        assert view.status_code == 200 and view.json()["unpaid_principal"] == "300.00", view.text
        pause = {"request_id": new_id("req"), "account_id": account, "reason": "disaster_relief", "operator_id": "x"}
        sent = http.post("/api/commands/pause", json=pause, headers=staff)
        assert sent.status_code == 202, sent.text
        outcome = _wait_outcome(http, sent.json()["event_id"], staff)
        assert outcome["reply_type"] == "delinquency.paused", outcome
        assert outcome["actor"] == "ops"


def _wait_outcome(http: httpx.Client, event_id: str, headers: dict[str, str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = http.get(f"/api/commands/{event_id}", headers=headers).json()
        if record.get("reply_type"):
            return record
        time.sleep(0.2)
    raise AssertionError(f"no outcome for {event_id} within {timeout}s")


def test_the_desk_reads_the_services_databases_and_cannot_write_them(stack: Stack) -> None:
    desk = f"{stack.db_prefix}_desk"
    for service in ("accounts", "collections", "restructuring"):
        engine = create_engine(f"postgresql+psycopg://{desk}@127.0.0.1:5432/{stack.db_prefix}_{service}")
        try:
            with engine.connect() as conn:
                table = conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' LIMIT 1")
                ).scalar()
                conn.execute(text(f'SELECT count(*) FROM "{table}"'))
                with pytest.raises(ProgrammingError, match="permission denied"):
                    conn.execute(text(f'DELETE FROM "{table}"'))
        finally:
            engine.dispose()


def test_an_outside_producer_feeds_only_the_queues_its_events_are_routed_to(stack: Stack) -> None:
    """payment-gateway's Redis user: its signed repayment is applied; it cannot push onto a
    service queue it does not feed, publish a type routed there, read or take from a queue,
    change a binding or flush the broker. Nor can a worker's user flush it."""
    out = _outside(stack)
    account = new_id("acc")
    mine = lambda p: p.get("account_id") == account  # noqa: E731
    gateway_url = stack.broker_url_as("payment-gateway")
    gateway = redis.Redis.from_url(gateway_url)
    try:
        out.publish("credit.line.granted", credit_line(account, "5000.00"), account)
        out.wait_for("credit.line.opened", mine, timeout=60)
        out.publish("purchase.requested", purchase(account, "200.00"), account)
        out.wait_for("purchase.approved", mine, timeout=60)
        paid = envelope("repayment.received", repayment(account, "200.00", "2026-02-20T10:00:00+08:00"), account)
        with Connection(gateway_url) as connection:
            publish_signed(Producer(connection.default_channel), paid, TEST_RING.signer("payment-gateway"))
            cured = envelope("account.cured", {"account_id": account}, account, producer="payment-gateway")
            with pytest.raises(redis.exceptions.NoPermissionError):
                publish_signed(Producer(connection.default_channel), cured, TEST_RING.signer("payment-gateway"))
        assert out.wait_for("repayment.applied", mine, timeout=60)[0]["payload"]["amount"] == "200.00"
        refused = [
            lambda: gateway.lpush("collections.events", b"{}"),
            lambda: gateway.lpush("restructuring.events", b"{}"),
            lambda: gateway.rpop("accounts.events"),
            lambda: gateway.lrange("accounts.events", 0, -1),
            lambda: gateway.sadd("_kombu.binding.baitiao.events", "x"),
            lambda: gateway.delete("accounts.events"),
            lambda: gateway.flushall(),
            lambda: redis.Redis.from_url(stack.broker_url_as("accounts")).flushall(),
        ]
        for attempt in refused:
            with pytest.raises(redis.exceptions.NoPermissionError):
                attempt()
        letters = _cli(stack, "dlq", "list", "--json")
        assert letters == [], letters
    finally:
        gateway.close()
        out.close()


def test_sigterm_stops_every_process_within_its_grace_period_holding_nothing(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.broker_url)
    took = {running.label: stack.stop(running) for running in list(stack.running)}
    grace = {name: stack.project.services[name].stop_grace_s for name in APP_SERVICES}
    assert all(seconds < grace[label.rsplit("-", 1)[0]] for label, seconds in took.items()), took
    held = {key.decode(): client.hlen(key) for key in client.scan_iter("*unacked") if client.type(key) == b"hash"}
    assert all(count == 0 for count in held.values()), held
