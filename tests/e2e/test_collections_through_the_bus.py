"""Collections' scenarios of tests/integration/collections, run again through the bus:
events published by a plain kombu producer, applied by the real collections worker
process, jobs sent to its queue (`collections.jobs`) and run by that worker.

Only the driver differs (``BusWorld`` here, ``World`` in the integration module); the
scenarios and their assertions are the same functions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from shared.job_runner import run_job_and_wait
from shared.settings import Settings
from tests.e2e.conftest import System, start_system, stop_system
from tests.integration.collections import test_collections_flow as scenarios
from tests.integration.collections.conftest import World
from tests.support.system import envelope

pytestmark = pytest.mark.e2e
REDIS_DB = 14


class BusWorld(World):
    """The integration ``World``, driven through the bus and the real worker instead."""

    def __init__(self, system: System):  # noqa: D107 - no applier: the worker applies
        from baitiao import registry
        from shared.celery_app import make_service_app

        self.system = system
        self.engine = create_engine(system.databases.url("collections"))
        self.app = make_service_app(registry.definition("collections"), Settings(broker_url=system.broker_url))
        self.sequence = 0

    def send(
        self,
        event_type: str,
        payload: dict[str, Any],
        *,
        at: datetime,
        aggregate_id: str | None = None,
        sequence: int | None = None,
        producer: str = "accounts",
    ) -> None:
        if sequence is None:
            self.sequence += 1
            sequence = self.sequence
        body = envelope(
            event_type,
            payload,
            aggregate_id or payload.get("account_id", "x"),
            occurred_at=at.isoformat(),
            producer=producer,
        )
        body["sequence"] = sequence
        self.system.outside.publish_raw(body, event_type)
        self._wait_applied(body["event_id"])

    def _wait_applied(self, event_id: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.engine.connect() as conn:
                if conn.scalar(text("SELECT 1 FROM inbox WHERE event_id = :e"), {"e": event_id}):
                    return
            time.sleep(0.05)
        raise AssertionError(f"collections did not apply {event_id} within {timeout}s")

    def _job(self, task: str, day: date, at: str | None) -> dict[str, Any]:
        return run_job_and_wait(self.app, task, "collections", day.isoformat(), at, timeout=120)

    def daily(self, day: date, at: str | None = None) -> dict[str, Any]:
        return self._job("collections.daily", day, at)

    def dispatch(self, day: date, at: str = "08:00", gateway: Any = None) -> dict[str, Any]:
        assert gateway is None, "the worker sends with its own gateway (the file backend)"
        return self._job("collections.contact_dispatch", day, at)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BusWorld]:
    system = start_system(REDIS_DB, tmp_path_factory.mktemp("collections-bus"), services=("collections",))
    bus_world = BusWorld(system)
    yield bus_world
    bus_world.engine.dispose()
    stop_system(system)


test_pre_due_reminders_on_the_right_days_per_grade = scenarios.test_pre_due_reminders_on_the_right_days_per_grade
test_no_sms_after_cure_including_one_already_queued = scenarios.test_no_sms_after_cure_including_one_already_queued
test_contact_planned_for_2130_goes_out_at_0800_next_day = (
    scenarios.test_contact_planned_for_2130_goes_out_at_0800_next_day
)
test_daily_sms_cap_one_per_account_per_day = scenarios.test_daily_sms_cap_one_per_account_per_day
test_escalation_to_call_agency_and_legal = scenarios.test_escalation_to_call_agency_and_legal
test_promise_pauses_contact_and_a_broken_one_escalates_at_once = (
    scenarios.test_promise_pauses_contact_and_a_broken_one_escalates_at_once
)
