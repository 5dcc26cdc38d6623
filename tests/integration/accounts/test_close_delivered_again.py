"""A close whose worker died after claiming the date: the slice delivered again is the same run.

The run's token is its first task's id (``JobContext.run``, kept by a slice delivered
again after its worker died), so the slice that kombu hands to a live worker about a
minute after the kill finds the date claimed by its own run and goes on; a run of its
own (another token) is still refused while the lease is fresh."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from services.accounts.daily_close import daily_close
from services.accounts.job_lease import JobLease, LeaseHeld
from shared.bus.outbox import Outbox
from shared.clock import SHANGHAI, FixedClock
from shared.jobs import JobContext
from shared.rules import ProductRules
from shared.settings import Settings
from tests.support.customers import credit_line, purchase
from tests.support.service_driver import ServiceDriver

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 14)


@pytest.fixture()
def accounts():
    driver = ServiceDriver("accounts")
    yield driver
    driver.drop()


def _close(accounts: ServiceDriver, run: str, at: str) -> dict[str, Any]:
    clock = FixedClock(datetime.fromisoformat(at).astimezone(SHANGHAI))
    state: dict[str, Any] = {}
    while True:
        ctx = JobContext(
            "accounts",
            "daily-close",
            DAY,
            None,
            accounts.engine,
            Outbox(accounts.definition.bus.outbox),
            ProductRules(),
            clock,
            Settings(accounts_db_url=accounts.engine.url.render_as_string(hide_password=False)),
            state,
            run=run,
        )
        result = daily_close(ctx)
        if not result.more:
            return result.summary
        state = result.state


def test_the_slice_delivered_again_goes_on_and_another_run_is_refused(accounts) -> None:
    accounts.send("credit.line.granted", credit_line("acc-again", "5000.00"))
    accounts.send("purchase.requested", purchase("acc-again", "800.00", "2026-02-14T15:00:00+08:00"))
    accounts.run_job("statements", date(2026, 3, 1))
    # The first slice of run "task-1" claimed the date, then its worker was killed.
    with Session(accounts.engine) as session, session.begin():
        JobLease("daily-close", "task-1").acquire(session, DAY, datetime(2026, 3, 14, 0, 30, tzinfo=SHANGHAI))
    with pytest.raises(LeaseHeld):  # an operator's new run, within the lease
        _close(accounts, "task-2", "2026-03-14T00:31:00+08:00")
    # kombu delivers the same slice again a minute later: the same run, it closes the date.
    summary = _close(accounts, "task-1", "2026-03-14T00:31:05+08:00")
    assert summary["status"] == "closed" and summary["bills_overdue"] == 1
    assert _close(accounts, "task-2", "2026-03-14T00:32:00+08:00")["status"] == "already_closed"
