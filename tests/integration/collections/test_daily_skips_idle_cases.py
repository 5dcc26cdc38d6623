"""collections-daily passes by the cases it cannot change that day, and that changes nothing.

Most cases on most days are open with a bill due in a week or more: no pre-due rule acts
before D-3 as shipped (``Strategy.first_pre_due_dpd``). The run leaves them out unless a
promise is pending or broken or their stage is still to be recorded. Held here: the same
days run with the filter and with every collectable case taken (the condition before
the filter) leave the same rows and events, on PostgreSQL and on SQLite, while the
filtered run reads fewer cases.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, or_, select, update

from services.collections import daily_strategy, jobs
from services.collections.domain import load_strategy
from services.collections.models import BUS, Bill, CollectionCase, PromiseToPay
from shared.bus.outbox import Outbox
from shared.clock import FixedClock, SHANGHAI, at_local
from shared.db import transaction
from shared.jobs import JobContext
from shared.rules import ProductRules
from shared.settings import Settings
from tests.support.batch_equivalence import Databases, Event, Service, _differences, bodies, databases_fixture

pytestmark = pytest.mark.integration

COLLECTIONS = Service("collections")
databases = databases_fixture("collections")
FIRST, LAST = date(2026, 3, 2), date(2026, 3, 24)
PROMISES_ON = date(2026, 3, 10)


def test_the_shipped_strategy_acts_from_three_days_before_the_due_date() -> None:
    assert load_strategy().first_pre_due_dpd() == -3


def _every_collectable_case(ctx: JobContext) -> Any:
    """The run's condition before the filter: every case with something collectable."""
    collectable = (
        select(Bill.bill_id)
        .where(Bill.account_id == CollectionCase.account_id, Bill.unpaid_fen > 0, Bill.plan_id.is_(None))
        .exists()
    )
    return or_(CollectionCase.plan_active.is_(True), (CollectionCase.status == "open") & collectable)


# --- scenario ---------------------------------------------------------------------------------


def _grant(account: str) -> Event:
    return "credit.line.granted", {
        "account_id": account,
        "customer_id": f"c-{account}",
        "identity_hash": "h" * 16,
        "credit_limit": "5000.00",
        "name": "张三",
        "phone": "13800005678",
        "opened_on": "2026-01-01",
    }


def _bill(account: str, due: str, statement: str = "2026-03-01") -> Event:
    return "bill.issued", {
        "bill_id": f"{account}-{due}",
        "account_id": account,
        "statement_date": statement,
        "due_date": due,
        "amount": "1000.00",
    }


def _setup() -> list[Event]:
    return [
        _grant("A"),
        _bill("A", "2026-03-20"),  # pre-due most of the run: reminded from D-3
        _grant("B"),
        _bill("B", "2026-03-05"),  # due early in the run, never paid: goes overdue
        _grant("C"),
        _bill("C", "2026-03-23"),  # a promise made (below) while its bill is far
        _grant("D"),
        _bill("D", "2026-03-28"),  # a promise broken (below) while its bill is far
        _grant("E"),
        _bill("E", "2026-04-10", statement="2026-03-10"),  # far all the run
    ]


def _promises(engine: Engine) -> None:
    """Mid-run, long after their stage was recorded: C makes a promise, D's promise breaks."""
    with transaction(engine) as session:
        session.add(
            PromiseToPay(
                account_id="C",
                recorded_on=PROMISES_ON,
                promised_date=PROMISES_ON + timedelta(days=3),
                pause_until=PROMISES_ON + timedelta(days=3),
                status="pending",
            )
        )
        session.execute(update(CollectionCase).where(CollectionCase.account_id == "D").values(promise_broken=True))


def _run_days(engine: Engine, tmp: Path, condition: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    """collections-daily for every day of the run; returns how many cases it read in all."""
    monkeypatch.setattr(daily_strategy, "_something_to_do", condition)
    clock, read = FixedClock(), 0
    for n in range((LAST - FIRST).days + 1):
        day = FIRST + timedelta(days=n)
        if day == PROMISES_ON:
            _promises(engine)
        clock.set(at_local(day, "08:00"))
        ctx = JobContext(
            service="collections",
            job="collections-daily",
            business_date=day,
            at=None,
            engine=engine,
            outbox=Outbox(BUS.outbox),
            rules=ProductRules(),
            clock=clock,
            settings=Settings(data_dir=tmp, sms_file_path=tmp / "sms.jsonl"),
        )
        while True:
            result = jobs.collections_daily(ctx)
            if not result.more:
                read += result.summary["cases"]  # the chain's, all its slices
                break
            ctx.state = result.state
    monkeypatch.undo()
    return read


def _job_state(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """The service's state; a job's events start a correlation of their own (a new id each run)."""
    state = COLLECTIONS.state(engine)
    for row in state["outbox"]:
        row.pop("correlation_id")
    return state


def test_skipping_idle_cases_leaves_the_same_rows_and_events(
    databases: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.collections.registry import HANDLERS

    setup = bodies(_setup(), at_local(date(2026, 3, 1), "00:10").astimezone(SHANGHAI))
    every = COLLECTIONS.prepared(databases, HANDLERS, setup)
    filtered = COLLECTIONS.prepared(databases, HANDLERS, setup)
    read_every = _run_days(every, tmp_path, _every_collectable_case, monkeypatch)
    read_filtered = _run_days(filtered, tmp_path, daily_strategy._something_to_do, monkeypatch)

    expected, found = _job_state(every), _job_state(filtered)
    assert found == expected, _differences(found, expected)
    # what the scenario says, so that "equal" cannot mean "equally idle"
    assert read_filtered < read_every - 40, (read_filtered, read_every)
    templates = {(c["account_id"], str(c["planned_for"])[:10], c["template"]) for c in expected["contact_attempts"]}
    assert ("A", "2026-03-17", "pre_due") in templates and ("A", "2026-03-19", "pre_due") in templates
    assert any(account == "B" for account, _, _ in templates)
    assert ("D", PROMISES_ON.isoformat(), "pre_due") in templates  # the next action, brought forward
    promises = {p["account_id"]: (p["status"], str(p["decided_on"])) for p in expected["promises"]}
    assert promises == {"C": ("kept", PROMISES_ON.isoformat())}  # not overdue: kept as soon as judged
    stages = {s["account_id"] for s in expected["case_stage_history"]}
    assert stages == {"A", "B", "C", "D", "E"}
