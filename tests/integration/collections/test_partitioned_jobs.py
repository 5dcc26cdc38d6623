"""collections-daily and contact-dispatch split into shares of the accounts do the same work.

With ``job_partitions`` above 1 each job goes out as chains, one per share (the case pk
modulo the count, ``JobContext.partition``), which the worker's job processes run side by
side. Held here, on PostgreSQL and on SQLite: the same days run as one chain and as two
shares, the second share first, leave the same rows and the same events, each account's
events in the same order; every share has work, and the shares' figures add up to the
whole run's.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from services.collections import contact_dispatch, jobs
from services.collections.casebook import utc
from services.collections.registry import HANDLERS
from services.collections.models import BUS, ContactAttempt
from shared.bus.outbox import Outbox
from shared.clock import FixedClock, SHANGHAI, at_local
from shared.job_runner import merge_chain_summaries
from shared.jobs import JobContext, JobFunction
from shared.rules import ProductRules
from shared.settings import Settings
from tests.support.batch_equivalence import Databases, Event, Service, bodies, databases_fixture

pytestmark = pytest.mark.integration

COLLECTIONS = Service("collections")
databases = databases_fixture("collections")
FIRST, LAST = date(2026, 3, 2), date(2026, 3, 16)
ACCOUNTS = "ABCDEFGH"


def _setup() -> list[Event]:
    """Eight credit lines with a bill each, due across the run and never paid."""
    events: list[Event] = []
    for k, account in enumerate(ACCOUNTS):
        events.append(
            (
                "credit.line.granted",
                {
                    "account_id": account,
                    "customer_id": f"c-{account}",
                    "identity_hash": f"{k:016d}",
                    "credit_limit": "5000.00",
                    "name": "张三",
                    "phone": f"1380000{k:04d}",
                    "opened_on": "2026-01-01",
                },
            )
        )
        events.append(
            (
                "bill.issued",
                {
                    "bill_id": f"{account}-1",
                    "account_id": account,
                    "statement_date": "2026-02-20",
                    "due_date": (FIRST + timedelta(days=k)).isoformat(),
                    "amount": f"{800 + 100 * k}.00",
                },
            )
        )
    return events


def _chain(fn: JobFunction, ctx: JobContext) -> dict[str, Any]:
    """One chain to its end, as the task wrapper would run it: its last summary."""
    while True:
        result = fn(ctx)
        if not result.more:
            return result.summary
        ctx.state = {**ctx.state, **result.state}


def _run(engine: Engine, tmp: Path, shares: list[tuple[int, int] | None]) -> dict[str, list[dict[str, Any]]]:
    """Both jobs for every day of the run, each as the given chains in that order."""
    clock = FixedClock()
    figures: dict[str, list[dict[str, Any]]] = defaultdict(list)
    settings = Settings(data_dir=tmp, sms_file_path=tmp / "sms.jsonl")
    for n in range((LAST - FIRST).days + 1):
        day = FIRST + timedelta(days=n)
        for name, fn in (("collections-daily", jobs.collections_daily), ("contact-dispatch", jobs.contact_dispatch)):
            clock.set(at_local(day, "09:00"))
            finals = []
            for share in shares:
                ctx = JobContext(
                    service="collections",
                    job=name,
                    business_date=day,
                    at="09:00",
                    engine=engine,
                    outbox=Outbox(BUS.outbox),
                    rules=ProductRules(),
                    clock=clock,
                    settings=settings,
                    state={"partition": list(share)} if share else {},
                )
                finals.append(_chain(fn, ctx))
            figures[name].append(merge_chain_summaries(finals))
    return figures


# The contact's id, and the message id derived from it: the shares insert the contacts
# in another order, so these numbers differ while what they stand for does not.
INSERTION_ORDER = ("contact_id", "message_id", "idempotency_key", "notice_id")  # an SMS notice_id is its message_id


def _without_insertion_order(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _without_insertion_order(v) if isinstance(v, dict) else v for k, v in row.items() if k not in INSERTION_ORDER
    }


def _as_multisets(state: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Every table's rows (an event's payload too) in a canonical order, without the
    numbers of insertion order."""
    return {
        table: sorted(json.dumps(_without_insertion_order(row), sort_keys=True, default=str) for row in rows)
        for table, rows in state.items()
    }


def _events_by_account(state: dict[str, list[dict[str, Any]]]) -> dict[str, list[tuple[str, Any]]]:
    """Each account's events in outbox order."""
    by_account: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for row in state["outbox"]:
        by_account[row["aggregate_id"]].append((row["type"], _without_insertion_order(row["payload"])))
    return dict(by_account)


def test_two_shares_do_what_one_run_does(databases: Databases, tmp_path: Path) -> None:
    setup = bodies(_setup(), at_local(date(2026, 2, 20), "00:10").astimezone(SHANGHAI))
    whole = COLLECTIONS.prepared(databases, HANDLERS, setup)
    split = COLLECTIONS.prepared(databases, HANDLERS, setup)
    one = _run(whole, tmp_path / "one", [None])
    two = _run(split, tmp_path / "two", [(1, 2), (0, 2)])

    expected, found = COLLECTIONS.state(whole), COLLECTIONS.state(split)
    for state in (expected, found):
        for row in state["outbox"]:
            row.pop("correlation_id")  # a job's events start a correlation of their own
    assert _as_multisets(found) == _as_multisets(expected)
    assert _events_by_account(found) == _events_by_account(expected)
    # what the scenario says, so that "equal" cannot mean "equally idle"
    assert {c["account_id"] for c in expected["contact_attempts"] if c["status"] == "sent"} == set(ACCOUNTS)
    for name in ("collections-daily", "contact-dispatch"):
        for whole_day, split_day in zip(one[name], two[name], strict=True):
            counts = {k: v for k, v in whole_day.items() if isinstance(v, int) and k != "slices"}
            assert {k: split_day.get(k) for k in counts} == counts, (name, whole_day, split_day)
    assert sum(day["cases"] for day in one["collections-daily"]) > 8 * 10


def test_each_share_has_its_own_accounts(databases: Databases, tmp_path: Path) -> None:
    """The two shares' cases are disjoint and together all of them."""
    setup = bodies(_setup(), at_local(date(2026, 2, 20), "00:10").astimezone(SHANGHAI))
    engine = COLLECTIONS.prepared(databases, HANDLERS, setup)
    day = FIRST + timedelta(days=4)
    clock = FixedClock(at_local(day, "09:00"))
    read = []
    for share in ((0, 2), (1, 2)):
        ctx = JobContext(
            service="collections",
            job="collections-daily",
            business_date=day,
            at=None,
            engine=engine,
            outbox=Outbox(BUS.outbox),
            rules=ProductRules(),
            clock=clock,
            settings=Settings(data_dir=tmp_path),
            state={"partition": list(share)},
        )
        read.append(_chain(jobs.collections_daily, ctx)["cases"])
    assert all(read) and sum(read) == len(ACCOUNTS), read


def test_the_dispatcher_fans_out_only_when_enough_contacts_are_due(
    databases: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dispatch_worth_fanning_out`` counts the contacts due at the run's instant."""
    setup = bodies(_setup(), at_local(date(2026, 2, 20), "00:10").astimezone(SHANGHAI))
    engine = COLLECTIONS.prepared(databases, HANDLERS, setup)
    day = FIRST + timedelta(days=7)  # every bill is due by now: reminders are queued
    clock = FixedClock(at_local(day, "09:00"))

    def ctx(job: str) -> JobContext:
        return JobContext(
            service="collections",
            job=job,
            business_date=day,
            at="09:00",
            engine=engine,
            outbox=Outbox(BUS.outbox),
            rules=ProductRules(),
            clock=clock,
            settings=Settings(data_dir=tmp_path, sms_file_path=tmp_path / "sms.jsonl"),
        )

    monkeypatch.setattr(contact_dispatch, "FAN_OUT_FROM_CONTACTS", 1)
    assert not jobs.dispatch_worth_fanning_out(ctx("contact-dispatch"))  # nothing queued yet
    _chain(jobs.collections_daily, ctx("collections-daily"))
    with engine.connect() as conn:
        due = conn.scalar(
            select(func.count())
            .select_from(ContactAttempt)
            .where(
                ContactAttempt.channel == "sms",
                ContactAttempt.status == "queued",
                ContactAttempt.planned_for <= utc(at_local(day, "09:00")),
            )
        )
    assert due >= 2
    for threshold, fans_out in ((due, True), (due + 1, False)):
        monkeypatch.setattr(contact_dispatch, "FAN_OUT_FROM_CONTACTS", threshold)
        assert jobs.dispatch_worth_fanning_out(ctx("contact-dispatch")) is fans_out, threshold


def test_a_dispatch_in_many_slices_reports_the_whole_chains_counts(
    databases: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain's summary is the chain's: each slice carries the counts of those before it."""
    setup = bodies(_setup(), at_local(date(2026, 2, 20), "00:10").astimezone(SHANGHAI))
    whole = COLLECTIONS.prepared(databases, HANDLERS, setup)
    sliced = COLLECTIONS.prepared(databases, HANDLERS, setup)
    one = _run(whole, tmp_path / "one", [None])
    monkeypatch.setattr(contact_dispatch, "CONTACTS_PER_SLICE", 1)
    many = _run(sliced, tmp_path / "many", [None])
    for whole_day, sliced_day in zip(one["contact-dispatch"], many["contact-dispatch"], strict=True):
        counts = {k: v for k, v in whole_day.items() if isinstance(v, int)}
        assert {k: sliced_day.get(k) for k in counts} == counts, (whole_day, sliced_day)
    assert max(day["contacts"] for day in many["contact-dispatch"]) > 1  # some day took several slices
