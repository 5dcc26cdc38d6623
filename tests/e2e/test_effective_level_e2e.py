"""The effective level on the wire: an account whose borrowing its twin suspends is not
reported as unrestricted (``account.restrictions.changed`` level >= 1, cause
``linked_account``), observed from outside through the bus with the real workers."""

from __future__ import annotations

import json
import uuid
from datetime import date

import pytest

from tests.e2e.conftest import start_system, stop_system
from tests.support.customers import credit_line, new_id, purchase
from tests.support.system import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(redis_db, tmp_path_factory):
    """A system of its own: the daily close is global by date."""
    running = start_system(redis_db + 11, tmp_path_factory.mktemp("level"), services=("accounts",))
    yield running
    stop_system(running)


def _job(system, name: str, day: date) -> dict:
    done = run_cli(["jobs", "run", name, "--date", day.isoformat()], system.env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_a_linked_suspension_is_reported_as_level_one(system) -> None:
    out = system.outside
    identity = uuid.uuid4().hex
    main, twin = new_id("acc"), new_id("acc")
    for account in (main, twin):
        out.publish("credit.line.granted", credit_line(account, "3000.00", identity=identity), account)
        out.wait_for("credit.line.opened", lambda p, a=account: p.get("account_id") == a)
    out.publish("purchase.requested", purchase(main, "1000.00", "2026-02-14T12:00:00+08:00"), main)
    out.wait_for("purchase.approved", lambda p: p.get("account_id") == main)
    _job(system, "statements", date(2026, 3, 1))
    _job(system, "daily-close", date(2026, 4, 10))  # DPD 31: the main account frozen

    changed = out.wait_for(
        "account.restrictions.changed", lambda p: p.get("account_id") == twin and p.get("cause") == "linked_account"
    )[-1]
    assert changed["payload"]["level"] == 1
    assert "linked_borrowing_suspended" in changed["payload"]["measures"]
    own = out.events("account.restrictions.changed", lambda p: p.get("account_id") == main)[-1]
    assert own["payload"]["level"] == 3

    out.publish("purchase.requested", purchase(twin, "10.00", "2026-04-10T12:00:00+08:00"), twin)
    declined = out.wait_for("purchase.declined", lambda p: p.get("account_id") == twin)[-1]
    assert declined["payload"]["reason"] == "linked_account_restricted"
