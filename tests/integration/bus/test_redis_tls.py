"""Redis over TLS (a ``rediss://`` broker URL), against a real ``redis-server`` that has
no plain port at all: whatever reaches it spoke TLS.

A throwaway CA signs the server's certificate (tests/support/tls_redis.py). With
``BAITIAO_BROKER_TLS_CA_FILE`` naming that CA:

- an envelope put on the bus by the project's own door (``baitiao.publishing``) is taken
  by the events consumer and applied by collections' handlers;
- every other client of the broker (Celery's broker connection and result backend,
  redbeat's connection, the job recorder's and the command line's redis-py clients) answers;
- a real ``baitiao worker accounts`` process answers signed commands and runs a job sent
  by ``baitiao jobs run`` (Celery's queue, control and result backend over TLS), and a
  real ``baitiao beat`` holds its redbeat lock, as its health check reads;

and a client that does not trust the CA is refused: the server is verified, not merely
encrypted to (kombu left to itself would not verify, which is shown too).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection

from baitiao.publishing import publish_envelope
from services.collections.models import BUS
from services.collections.registry import HANDLERS
from shared.broker import broker_client, broker_connection
from shared.bus.consumer import ConsumerConfig, EventConsumer
from shared.bus.handling import EventApplier
from shared.clock import SystemClock
from shared.rules import ProductRules
from tests.support.batch_equivalence import Databases, databases_fixture
from tests.support.customers import credit_line, new_id, purchase
from tests.support.signing import TEST_RING
from tests.support.system import Databases as SystemDatabases
from tests.support.system import OutsideSystem, Workers, envelope, poll_until, row_count, run_cli
from tests.support.tls_redis import Authority, certificate_authority, tls_redis

pytestmark = pytest.mark.integration

databases = databases_fixture("collections", kinds=("sqlite",))


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return certificate_authority(tmp_path_factory.mktemp("tls-ca"))


@pytest.fixture(scope="module")
def tls_port(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with tls_redis(authority, tmp_path_factory.mktemp("tls-redis") / "redis.log") as port:
        yield port


@pytest.fixture
def tls_url(monkeypatch: pytest.MonkeyPatch, authority: Authority, tls_port: int) -> str:
    """This process's broker is the TLS one, its CA the throwaway one; the database emptied."""
    url = f"rediss://127.0.0.1:{tls_port}/0"
    monkeypatch.setenv("BAITIAO_BROKER_URL", url)
    monkeypatch.setenv("BAITIAO_BROKER_TLS_CA_FILE", str(authority.ca))
    broker_client(url).flushdb()
    return url


def _grant(account: str) -> dict[str, Any]:
    return {
        "account_id": account,
        "customer_id": f"c-{account}",
        "identity_hash": "h" * 16,
        "credit_limit": "5000.00",
        "name": "张三",
        "phone": "13800005678",
        "opened_on": "2026-01-01",
    }


def test_an_envelope_published_over_tls_is_consumed_and_applied(databases: Databases, tls_url: str) -> None:
    engine = databases()
    applier = EventApplier("collections", engine, BUS, HANDLERS, ProductRules(), SystemClock(), trust=TEST_RING)
    consumer = EventConsumer("collections", tls_url, applier, ConsumerConfig())
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        account = new_id("tls")
        body = envelope("credit.line.granted", _grant(account), account)
        with broker_connection(tls_url) as connection:
            client = connection.default_channel.client
            assert isinstance(client.connection_pool.get_connection(), redis.SSLConnection)
            publish_envelope(connection, body, body["producer"], TEST_RING)
        poll_until(lambda: row_count(engine, "customers") == 1)
    finally:
        consumer.stop()
        thread.join(timeout=10)
    assert row_count(engine, "inbox") == 1 and row_count(engine, "dead_letters") == 0


def test_every_client_of_the_broker_reaches_it_over_tls(tls_url: str) -> None:
    from redbeat.schedulers import get_redis

    from shared.beat import make_beat_app
    from shared.celery_app import job_celery_app
    from shared.lost_job_messages import broker_client as job_recorder_client

    app = job_celery_app("tests.tls", tls_url)
    assert app.conf.broker_use_ssl["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1)
    assert app.backend.client.ping()
    assert job_recorder_client(app).ping()
    beat = make_beat_app(tls_url)
    assert get_redis(beat).ping()
    assert broker_client(tls_url, socket_timeout=2).ping()


def test_a_client_that_does_not_trust_the_ca_is_refused(
    monkeypatch: pytest.MonkeyPatch, tls_url: str, tmp_path: Path
) -> None:
    stranger = certificate_authority(tmp_path / "other", "another CA")
    monkeypatch.setenv("BAITIAO_BROKER_TLS_CA_FILE", str(stranger.ca))
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        broker_client(tls_url).ping()
    with pytest.raises(Exception, match="certificate verify failed"):
        with broker_connection(tls_url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
    from shared.celery_app import job_celery_app

    app = job_celery_app("tests.tls-stranger", tls_url)  # Celery's own connections: refused too
    with pytest.raises(Exception, match="certificate verify failed"):
        with app.connection_for_write(connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        app.backend.client.ping()
    monkeypatch.delenv("BAITIAO_BROKER_TLS_CA_FILE")  # the system's trust store does not know it either
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        broker_client(tls_url).ping()
    # What shared/broker.py is for: kombu given a rediss:// URL and no ssl options connects
    # with CERT_NONE, to any server at all.
    with Connection(tls_url, connect_timeout=2) as bare:
        bare.ensure_connection(max_retries=1)
        assert bare.ssl == {"ssl_cert_reqs": ssl.CERT_NONE}


def test_a_worker_answers_commands_over_tls(authority: Authority, tls_url: str, tmp_path: Path) -> None:
    dbs = SystemDatabases().create(("accounts",))
    env = {
        "BAITIAO_BROKER_URL": tls_url,
        "BAITIAO_BROKER_TLS_CA_FILE": str(authority.ca),
        "BAITIAO_ACCOUNTS_DB_URL": dbs.url("accounts"),
        "BAITIAO_DATA_DIR": str(tmp_path / "data"),
        "BAITIAO_LOG_LEVEL": "WARNING",
    }
    workers = Workers(env, tmp_path)
    outside = OutsideSystem(tls_url, ssl={"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": str(authority.ca)})
    try:
        workers.start("accounts")
        account = new_id("tls")
        outside.publish("credit.line.granted", credit_line(account, "5000.00"), account)
        opened = outside.wait_for("credit.line.opened", lambda p: p.get("account_id") == account, timeout=60)
        assert opened[0]["producer"] == "accounts" and "signature" in opened[0]
        bought = purchase(account, "1000.00")
        outside.publish("purchase.requested", bought, account)
        approved = outside.wait_for("purchase.approved", lambda p: p.get("purchase_id") == bought["purchase_id"])
        assert approved[0]["payload"]["available_limit"] == "4000.00"
        # A job through Celery: its queue, the worker's answer to `inspect`, the result backend.
        ran = run_cli(["jobs", "run", "statements", "--date", "2026-03-01", "--timeout", "60"], env, timeout=120)
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["business_date"] == "2026-03-01"
        status = run_cli(["status", "--json"], env, timeout=60)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["broker"]["state"] == "up"
    finally:
        workers.stop_all()
        outside.close()
        dbs.drop()


def test_the_beat_holds_its_lock_over_tls(authority: Authority, tls_url: str, tmp_path: Path) -> None:
    """``baitiao beat`` (redbeat's schedule and lock) over TLS, and its health check."""
    import os
    import signal
    import subprocess
    import sys

    from baitiao.processes import die_with_parent
    from tests.support.system import ROOT

    env = {
        **os.environ,
        "BAITIAO_BROKER_URL": tls_url,
        "BAITIAO_BROKER_TLS_CA_FILE": str(authority.ca),
        "BAITIAO_BEAT_LOCK_TIMEOUT": "10",
        "BAITIAO_DATA_DIR": str(tmp_path),
    }

    def health() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "baitiao.liveness", "beat", "--max-age", "4"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )

    log = (tmp_path / "beat.log").open("wb")
    beat = subprocess.Popen(
        [sys.executable, "-m", "baitiao.cli", "beat", "--loglevel", "WARNING"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    try:
        deadline = time.monotonic() + 60
        while (checked := health()).returncode != 0:
            assert time.monotonic() < deadline, checked.stdout + (tmp_path / "beat.log").read_text()[-2000:]
            time.sleep(0.5)
        assert checked.stdout.startswith("ok: the beat renewed its lock")
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(timeout=30)
        log.close()
