"""A worker SIGKILLed around the commit: nothing is lost and nothing is applied twice.

The accounts worker is started with ``BAITIAO_FAULT`` so that it kills itself
(SIGKILL) at the named point when it meets the chosen account's purchase. A
clean worker then starts; kombu restores the unacked message after the
visibility timeout (15 s here, 60 s by default) and the inbox decides.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, func, select

from services.accounts.models import Purchase
from tests.e2e.conftest import start_system, stop_system
from tests.support.customers import credit_line, new_id, purchase

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def accounts_only(tmp_path_factory, redis_db):
    running = start_system(redis_db + 1, tmp_path_factory.mktemp("crash"), services=())
    yield running
    stop_system(running)


def _purchases(system, purchase_id: str) -> int:
    engine = create_engine(system.databases.url("accounts"))
    with engine.connect() as conn:
        count = conn.scalar(select(func.count()).select_from(Purchase).where(Purchase.purchase_id == purchase_id))
    engine.dispose()
    return int(count or 0)


def _crash_then_recover(system, point: str) -> tuple[str, dict]:
    account = new_id("acc")
    workers, out = system.workers, system.outside
    workers.start("accounts")
    out.publish("credit.line.granted", credit_line(account, "900.00"), account)
    out.wait_for("credit.line.opened", lambda p: p["account_id"] == account, timeout=60)
    workers.stop_all()

    workers.start("accounts", {"BAITIAO_FAULT": f"{point}:purchase.requested:{account}"})
    body = out.publish("purchase.requested", purchase(account, "500.00"), account)
    assert workers.wait_exit("accounts", timeout=60) == -9  # SIGKILL, by its own hand
    started = time.monotonic()
    workers.start("accounts")
    return account, {"body": body, "started": started}


def test_killed_after_commit_before_ack_applies_nothing_twice(accounts_only) -> None:
    system = accounts_only
    account, run = _crash_then_recover(system, "after_commit")
    purchase_id = run["body"]["payload"]["purchase_id"]
    assert _purchases(system, purchase_id) == 1  # committed before the kill
    # The redelivered message must be absorbed by the inbox: the limit was used once only.
    probe = purchase(account, "400.00")
    deadline = time.monotonic() + 120
    system.outside.pump(20)  # past the visibility timeout: the unacked message is restored and seen again
    system.outside.publish("purchase.requested", probe, account)
    system.outside.wait_for(
        "purchase.approved", lambda p: p["purchase_id"] == probe["purchase_id"], timeout=deadline - time.monotonic()
    )
    assert _purchases(system, purchase_id) == 1
    approvals = system.outside.events("purchase.approved", lambda p: p["purchase_id"] == purchase_id)
    # The reply committed before the kill is published once (by the restarted relay, in id order
    # before the probe's); the redelivered request adds none.
    assert len(approvals) == 1
    system.workers.stop_all()


def test_killed_before_commit_handles_the_event_after_restart_within_two_minutes(accounts_only) -> None:
    system = accounts_only
    account, run = _crash_then_recover(system, "before_commit")
    purchase_id = run["body"]["payload"]["purchase_id"]
    assert _purchases(system, purchase_id) == 0  # the transaction died with the worker
    system.outside.wait_for("purchase.approved", lambda p: p["purchase_id"] == purchase_id, timeout=120)
    assert time.monotonic() - run["started"] < 120
    assert _purchases(system, purchase_id) == 1
    system.workers.stop_all()
