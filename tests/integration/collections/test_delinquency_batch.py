"""``account.delinquency.updated`` in collections: one batch ends as the events one by one.

The same history is applied twice, under two prefixes of the ids, on PostgreSQL and on
SQLite, both times through the registered handlers: once one event per batch (a batch of
one is the per-event path), once as ONE batch. Cases, bills and the outbox must come out
the same, and as the scenario says. The batch has snapshots out of order (an older
sequence ignored, a later sequence with an earlier business date applied: the ordering
rule of ``shared/snapshot_order.py``), several per account, unsequenced ones, a bill
listed twice, a case created by the run, cured and restructured cases, and other event
types between the snapshots (so several runs, and per-event handlers reading what a run
wrote in the same transaction).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from baitiao import registry
from services.collections.registry import HANDLERS
from services.collections.models import BUS, Bill, CollectionCase
from shared.bus.handling import BatchHandler, Delivery, EventApplier, HandlerContext
from shared.bus.outbox import Outbox
from shared.clock import FixedClock, at_local
from shared.db import make_engine, transaction
from shared.events import new_envelope
from shared.events.envelope import read_event
from shared.migrations import upgrade
from shared.rules import ProductRules

D0 = date(2026, 3, 10)  # the bills' due date


def d(days: int) -> date:
    return D0 + timedelta(days=days)


Event = tuple[str, dict[str, Any], int | None]


def snapshot(account: str, day: int, seq: int | None, bills: list[tuple[str, int, str]], due: date = D0) -> Event:
    """A delinquency snapshot of ``d(day)``; bills as (bill_id, dpd, unpaid principal)."""
    total = sum((float(unpaid) for _, _, unpaid in bills), 0.0)
    return (
        "account.delinquency.updated",
        {
            "account_id": account,
            "business_date": d(day).isoformat(),
            "max_dpd": max((dpd for _, dpd, _ in bills), default=0),
            "overdue_principal": f"{total:.2f}",
            "penalty_interest": "1.00",
            "late_fees": "2.00",
            "total_overdue": f"{total + 3:.2f}",
            "bills": [
                {
                    "bill_id": bill_id,
                    "due_date": due.isoformat(),
                    "dpd": dpd,
                    "unpaid_principal": unpaid,
                    "penalty_interest": "0.50",
                    "late_fee": "1.00",
                }
                for bill_id, dpd, unpaid in bills
            ],
        },
        seq,
    )


def grant(account: str) -> Event:
    return (
        "credit.line.granted",
        {
            "account_id": account,
            "customer_id": f"c-{account}",
            "identity_hash": "h" * 16,
            "credit_limit": "5000.00",
            "name": "张三",
            "phone": "13800000000",
            "opened_on": "2026-01-01",
        },
        None,
    )


def bill(account: str, bill_id: str, due: date = D0) -> Event:
    return (
        "bill.issued",
        {
            "bill_id": bill_id,
            "account_id": account,
            "statement_date": due.replace(day=1).isoformat(),
            "due_date": due.isoformat(),
            "amount": "1000.00",
        },
        None,
    )


def history(x: str) -> tuple[list[Event], list[Event]]:
    """(what is there before, the night's batch) with every id prefixed by ``x``."""
    a, b, c, dd, e, f, g = (f"{x}acc-{k}" for k in "abcdefg")
    before: list[Event] = [
        grant(a),
        bill(a, f"{a}-b1"),
        snapshot(a, 3, 10, [(f"{a}-b1", 3, "1000.00")]),
        grant(c),
        bill(c, f"{c}-b1"),
        snapshot(c, 3, 10, [(f"{c}-b1", 3, "1000.00")]),
        ("account.cured", {"account_id": c, "business_date": d(4).isoformat()}, 11),
        grant(dd),
        bill(dd, f"{dd}-b1"),
        bill(dd, f"{dd}-b2"),
        snapshot(dd, 3, 10, [(f"{dd}-b1", 3, "1000.00"), (f"{dd}-b2", 3, "1000.00")]),
        (
            "plan.activated",
            {
                "plan_id": f"{dd}-p1",
                "offer_id": f"{dd}-o1",
                "account_id": dd,
                "principal": "1000.00",
                "term": 3,
                "bill_ids": [f"{dd}-b1"],
                "schedule": [
                    {
                        "period": 1,
                        "due_date": d(30).isoformat(),
                        "principal": "333.33",
                        "fee": "5.00",
                        "total": "338.33",
                    }
                ],
            },
            11,
        ),
        grant(e),
        bill(e, f"{e}-b1"),
        snapshot(e, 3, None, [(f"{e}-b1", 3, "1000.00")]),
        grant(f),
        bill(f, f"{f}-b1"),
        snapshot(f, 6, 20, [(f"{f}-b1", 6, "900.00")]),
        grant(g),
        bill(g, f"{g}-b1"),
        bill(g, f"{g}-b2", due=d(10)),
    ]
    night: list[Event] = [
        ("risk.assessed", {"account_id": a, "score": 600, "grade": "B", "factors": []}, 1),  # loads a's case
        (
            "repayment.applied",
            {
                "payment_id": f"{a}-pay0",
                "account_id": a,
                "amount": "50.00",  # loads a's bill b1
                "allocations": [
                    {"target": "bill", "target_id": f"{a}-b1", "component": "principal", "amount": "50.00"}
                ],
                "credit_balance": "0.00",
                "total_overdue": "950.00",
            },
            2,
        ),
        snapshot(a, 5, 12, [(f"{a}-b1", 5, "600.00"), (f"{a}-b2", 5, "500.00")]),
        snapshot(a, 5, 11, [(f"{a}-b1", 5, "999.00")]),  # out of order: older sequence, ignored
        snapshot(b, 5, 3, [(f"{b}-b1", 5, "300.00")]),  # no case yet: the run creates it
        snapshot(a, 4, 9, [(f"{a}-b1", 4, "998.00")]),  # older on both counts: ignored
        snapshot(c, 5, 12, [(f"{c}-b2", 1, "200.00")]),  # cured before: reopens
        snapshot(dd, 5, 12, [(f"{dd}-b2", 5, "1000.00")]),  # plan active: stays closed, b1 (in the plan) kept
        snapshot(e, 4, None, [(f"{e}-b1", 4, "800.00")]),
        snapshot(e, 4, 5, [(f"{e}-b1", 4, "700.00")]),
        snapshot(e, 4, 3, [(f"{e}-b1", 4, "650.00")]),  # older than 5 on the same date: ignored
        snapshot(f, 5, 30, [(f"{f}-b1", 5, "100.00")]),  # an earlier date, a later sequence: applies
        snapshot(f, 6, 19, [(f"{f}-b1", 6, "200.00")]),  # a later date, an older sequence: ignored
        snapshot(g, 5, 3, [(f"{g}-b1", 5, "400.00"), (f"{g}-b1", 5, "350.00")]),  # listed twice; b2 not due yet
        snapshot(a, 5, 14, [(f"{a}-b2", 5, "500.00")]),  # b1 no longer listed: paid
        (
            "repayment.applied",
            {
                "payment_id": f"{a}-pay1",
                "account_id": a,
                "amount": "100.00",
                "allocations": [
                    {"target": "bill", "target_id": f"{a}-b2", "component": "principal", "amount": "100.00"}
                ],
                "credit_balance": "0.00",
                "total_overdue": "11.11",
            },
            13,
        ),  # older than the snapshot
        (
            "repayment.applied",
            {
                "payment_id": f"{a}-pay2",
                "account_id": a,
                "amount": "150.00",
                "allocations": [
                    {"target": "bill", "target_id": f"{a}-b2", "component": "principal", "amount": "100.00"},
                    {"target": "bill", "target_id": f"{a}-b1", "component": "principal", "amount": "50.00"},
                ],
                "credit_balance": "0.00",
                "total_overdue": "403.00",
            },
            15,
        ),
        snapshot(e, 4, None, [(f"{e}-b1", 4, "600.00")]),  # unsequenced on the same date: applies
        snapshot(a, 6, 16, []),  # nothing listed any more: every open overdue bill cleared
        snapshot(c, 6, 13, [(f"{c}-b2", 2, "200.00")]),
    ]
    return before, night


def deliveries(events: list[Event]) -> list[Delivery]:
    out = []
    for k, (event_type, payload, seq) in enumerate(events):
        at = at_local(D0, "00:30") + timedelta(seconds=k)
        envelope = new_envelope(
            event_type,
            payload,
            aggregate_id=payload.get("account_id", "x"),
            producer="accounts",
            occurred_at=at,
            sequence=seq,
        )
        out.append(Delivery(body=json.dumps(envelope).encode()))
    return out


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest, pg_url: str, tmp_path: Path) -> Iterator[Any]:
    url = pg_url if request.param == "postgresql" else f"sqlite:///{tmp_path / 'collections.db'}"
    if request.param == "sqlite":
        upgrade(registry.definition("collections"), url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def state(engine: Any, x: str) -> dict[str, Any]:
    """Cases, bills and outbox of the accounts prefixed ``x``, with the prefix taken out."""

    def plain(row: Any) -> dict[str, Any]:
        return {k: (v.replace(x, "", 1) if isinstance(v, str) else v) for k, v in row._mapping.items() if k != "pk"}

    cases, bills, outbox = CollectionCase.__table__, Bill.__table__, BUS.outbox
    with engine.connect() as conn:
        return {
            "cases": sorted(
                (plain(r) for r in conn.execute(select(cases).where(cases.c.account_id.startswith(x)))),
                key=lambda r: r["account_id"],
            ),
            "bills": sorted(
                (plain(r) for r in conn.execute(select(bills).where(bills.c.bill_id.startswith(x)))),
                key=lambda r: r["bill_id"],
            ),
            "outbox": sorted(
                (r.type, r.aggregate_id.replace(x, "", 1))
                for r in conn.execute(
                    select(outbox.c.type, outbox.c.aggregate_id).where(outbox.c.aggregate_id.startswith(x))
                )
            ),
        }


def test_a_batch_of_snapshots_ends_as_the_events_one_by_one(engine: Any) -> None:
    clock, rules = FixedClock(), ProductRules()
    clock.set(at_local(D0, "00:30"))
    one_by_one = EventApplier("collections", engine, BUS, HANDLERS, rules, clock)
    runs: list[int] = []
    batch_handler = HANDLERS["account.delinquency.updated"]
    assert isinstance(batch_handler, BatchHandler)

    def counting(items: list[Any]) -> None:
        runs.append(len(items))
        batch_handler.fn(items)

    batched = EventApplier(
        "collections", engine, BUS, {**HANDLERS, "account.delinquency.updated": BatchHandler(counting)}, rules, clock
    )

    for x, applier in (("one-", one_by_one), ("bat-", batched)):
        before, night = history(x)
        for delivery in deliveries(before):
            assert one_by_one.apply_batch([delivery]).applied == 1
        if applier is one_by_one:
            for delivery in deliveries(night):
                assert applier.apply_batch([delivery]).applied == 1
        else:
            outcome = applier.apply_batch(deliveries(night))
            assert outcome.applied == len(night) and not outcome.retry and not outcome.dead_lettered

    assert runs == [13, 3]  # two runs, split by the repayments
    expected, got = state(engine, "one-"), state(engine, "bat-")
    assert got == expected
    # and the scenario does what it says (so the comparison is not of two empty worlds)
    cases = {c["account_id"]: c for c in got["cases"]}
    bills = {b["bill_id"]: b for b in got["bills"]}
    assert cases["acc-b"]["opened_on"] == d(5) and cases["acc-b"]["delinquency_seq"] == 3
    assert cases["acc-c"]["status"] == "open" and cases["acc-c"]["opened_on"] == d(5)
    assert cases["acc-d"]["status"] == "closed" and bills["acc-d-b1"]["unpaid_fen"] == 100000
    assert bills["acc-d-b2"]["dpd"] == 5
    assert cases["acc-e"]["delinquency_seq"] is None and bills["acc-e-b1"]["unpaid_fen"] == 60000
    assert cases["acc-f"]["delinquency_seq"] == 30 and cases["acc-f"]["delinquency_as_of"] == d(5)
    assert bills["acc-f-b1"]["unpaid_fen"] == 10000 and bills["acc-f-b1"]["state_seq"] == 30
    assert bills["acc-g-b1"]["unpaid_fen"] == 35000 and bills["acc-g-b2"]["unpaid_fen"] == 100000
    assert cases["acc-a"]["delinquency_as_of"] == d(6) and cases["acc-a"]["delinquency_seq"] == 16
    assert bills["acc-a-b1"]["unpaid_fen"] == 0 and bills["acc-a-b2"]["unpaid_fen"] == 0
    assert bills["acc-a-b2"]["state_seq"] == 16 and cases["acc-a"]["grade"] == "B"


def test_objects_already_in_the_session_see_what_the_run_wrote(engine: Any) -> None:
    """A handler earlier in the same transaction may still hold the case or a bill."""
    clock, rules = FixedClock(), ProductRules()
    clock.set(at_local(D0, "00:30"))
    applier = EventApplier("collections", engine, BUS, HANDLERS, rules, clock)
    account = "held-acc"
    for delivery in deliveries([grant(account), bill(account, "held-b1")]):
        assert applier.apply_batch([delivery]).applied == 1
    run = []
    with transaction(engine) as session:
        case = session.scalar(select(CollectionCase).where(CollectionCase.account_id == account))
        held_bill = session.get(Bill, "held-b1")
        assert case.max_dpd == 0 and held_bill.dpd == 0
        for delivery in deliveries(
            [snapshot(account, 3, 1, [("held-b1", 3, "700.00")]), snapshot(account, 4, 2, [("held-b1", 4, "600.00")])]
        ):
            envelope, payload = read_event(delivery.body)
            run.append((HandlerContext(session, envelope, Outbox(BUS.outbox), rules, clock), payload))
        handler = HANDLERS["account.delinquency.updated"]
        assert isinstance(handler, BatchHandler)
        handler.fn(run)
        assert (case.max_dpd, case.delinquency_seq, case.total_overdue_fen) == (4, 2, 60300)
        assert (held_bill.dpd, held_bill.unpaid_fen, held_bill.state_seq) == (4, 60000, 2)
