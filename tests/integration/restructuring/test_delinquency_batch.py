"""``account.delinquency.updated`` in restructuring: runs of every length leave the same state.

The same wire bodies go into fresh databases, all through the registered handlers: once
one event per transaction (a batch of one is the per-event path), then in one batch and
in batches of three. Every projection row, every risk assessment and every event written
to the outbox must be the same, on PostgreSQL and on SQLite (the embedded default), and
as the scenario says.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Table, select

from baitiao import registry
from services.restructuring.registry import HANDLERS
from services.restructuring.models import BUS, AccountView, BillView, RiskAssessmentRow
from shared.bus.handling import BatchHandler, Delivery, EventApplier
from shared.clock import FixedClock
from shared.db import make_engine
from shared.events import new_envelope
from shared.migrations import upgrade
from shared.rules import ProductRules

from .conftest import PG, _drop, at

Event = tuple[str, dict[str, Any], datetime, "int | None"]


def test_registered_handler_is_the_batch_one() -> None:
    assert isinstance(HANDLERS["account.delinquency.updated"], BatchHandler)


# --- scenario ---------------------------------------------------------------------------------


def _grant(account: str, income: str | None = "20000.00", opened_on: str = "2023-01-01") -> Event:
    payload: dict[str, Any] = {
        "account_id": account,
        "customer_id": f"c-{account}",
        "identity_hash": "h" * 16,
        "credit_limit": "5000.00",
        "name": "张三",
        "phone": "13800005678",
        "opened_on": opened_on,
    }
    if income is not None:
        payload["monthly_income"] = income
    return "credit.line.granted", payload, at(opened_on), None


def _issued(account: str, bill: str, due: str, amount: str = "1000.00") -> Event:
    return (
        "bill.issued",
        {"bill_id": bill, "account_id": account, "statement_date": "2026-02-20", "due_date": due, "amount": amount},
        at("2026-02-20", "00:10"),
        1,
    )


def _overdue(
    account: str, bill: str, due: str, day: str, dpd: int, seq: int | None, principal: str = "1000.00"
) -> Event:
    return (
        "bill.overdue",
        {
            "bill_id": bill,
            "account_id": account,
            "due_date": due,
            "business_date": day,
            "dpd": dpd,
            "unpaid_principal": principal,
        },
        at(day, "00:30"),
        seq,
    )


def _line(
    bill: str, due: str, dpd: int, principal: str = "1000.00", penalty: str = "2.50", fee: str = "10.00"
) -> dict[str, Any]:
    return {
        "bill_id": bill,
        "due_date": due,
        "dpd": dpd,
        "unpaid_principal": principal,
        "penalty_interest": penalty,
        "late_fee": fee,
    }


def _snapshot(account: str, day: str, seq: int | None, *lines: dict[str, Any]) -> Event:
    principal = sum((Decimal(x["unpaid_principal"]) for x in lines), Decimal("0.00"))
    penalty = sum((Decimal(x["penalty_interest"]) for x in lines), Decimal("0.00"))
    fees = sum((Decimal(x["late_fee"]) for x in lines), Decimal("0.00"))
    return (
        "account.delinquency.updated",
        {
            "account_id": account,
            "business_date": day,
            "max_dpd": max((x["dpd"] for x in lines), default=0),
            "overdue_principal": str(principal),
            "penalty_interest": str(penalty),
            "late_fees": str(fees),
            "total_overdue": str(principal + penalty + fees),
            "bills": list(lines),
        },
        at(day, "00:30"),
        seq,
    )


def _cured(account: str, day: str, seq: int | None) -> Event:
    return "account.cured", {"account_id": account, "business_date": day}, at(day, "00:30"), seq


def _repaid(account: str, bill: str, amount: str, day: str, seq: int | None) -> Event:
    return (
        "repayment.applied",
        {
            "payment_id": f"pay-{uuid.uuid4().hex[:8]}",
            "account_id": account,
            "amount": amount,
            "allocations": [{"target": "bill", "target_id": bill, "component": "principal", "amount": amount}],
            "credit_balance": "0.00",
            "total_overdue": "0.00",
        },
        at(day, "12:00"),
        seq,
    )


def _setup() -> list[Event]:
    """History before the night: lines, bills, one account overdue and assessed already."""
    return [
        _grant("A"),
        _issued("A", "A1", "2026-03-10"),
        _issued("A", "A2", "2026-03-05", "500.00"),
        _grant("C", income=None, opened_on="2025-12-31"),
        _grant("E"),
        _issued("E", "E1", "2026-03-10"),
        _grant("G"),
        _issued("G", "G1", "2026-03-10"),
        _overdue("G", "G1", "2026-03-10", "2026-03-11", 1, 50),
        _grant("P"),
        _issued("P", "P1", "2026-03-01", "2970.00"),
        _issued("P", "P2", "2026-03-10"),
        _snapshot("P", "2026-03-12", 1, _line("P1", "2026-03-01", 11, "2970.00", "0.00", "30.00")),
        ("plan.offers.requested", {"request_id": "req-P", "account_id": "P"}, at("2026-03-12", "10:00"), None),
    ]


def _accept(engine: Engine) -> list[Event]:
    """Accept P's six-month offer (offer ids are derived, so every database has the same)."""
    (offered,) = [e["payload"] for e in _state(engine)["outbox"] if e["type"] == "plan.offered"]
    offer = next(o for o in offered["offers"] if o["term"] == 6)
    accepted = at("2026-03-13")
    return [
        (
            "plan.offer.accepted",
            {"offer_id": offer["offer_id"], "account_id": "P", "accepted_at": accepted.isoformat()},
            accepted,
            None,
        )
    ]


def _night() -> list[Event]:
    """The flood, with what makes it hard: several snapshots of one account, older ones after
    newer ones, sequences missing, a cure in the middle, other event types in between."""
    return [
        _snapshot("A", "2026-03-20", 10, _line("A1", "2026-03-10", 10), _line("A2", "2026-03-05", 15, "500.00")),
        _snapshot("B", "2026-03-20", 5, _line("B1", "2026-03-12", 8, "3000.00", "0.00", "30.00")),
        _snapshot("A", "2026-03-19", 9, _line("A1", "2026-03-10", 9, "999.00")),  # older: ignored
        _snapshot("C", "2026-03-20", None, _line("C1", "2026-03-15", 5)),
        _repaid("E", "E1", "100.00", "2026-03-19", 2),
        _snapshot("E", "2026-03-20", 3, _line("E1", "2026-03-10", 10, "900.00")),
        _snapshot("G", "2026-03-20", 40, _line("G1", "2026-03-10", 10, "800.00")),  # the bill knows newer
        _snapshot("D", "2026-03-20", 3),  # nothing overdue
        _snapshot("A", "2026-03-21", 11, _line("A1", "2026-03-10", 11)),  # A2 repaid: cleared
        _snapshot("C", "2026-03-18", None, _line("C1", "2026-03-15", 3, "1.00")),  # older by date: ignored
        # P1 is in a plan: never touched again; P2 goes overdue (the episode was assessed already)
        _snapshot("P", "2026-03-20", 5, _line("P1", "2026-03-01", 19), _line("P2", "2026-03-10", 10, "700.00")),
        _repaid("E", "E1", "50.00", "2026-03-21", 4),
        _cured("B", "2026-03-22", 7),
        _snapshot("B", "2026-03-21", 6, _line("B1", "2026-03-12", 9)),  # older than the cure: ignored
        _snapshot("B", "2026-03-23", 8, _line("B1", "2026-03-12", 11, "2000.00")),  # a new episode: assessed again
        _snapshot("C", "2026-03-20", None, _line("C1", "2026-03-15", 5, "900.00"), _line("C2", "2026-03-18", 2)),
        _overdue("E", "E1", "2026-03-10", "2026-03-11", 1, 1),
        _snapshot("F", "2026-03-20", 2, _line("F1", "2026-03-10", 10), _line("F2", "2026-03-10", 10)),
        _snapshot("F", "2026-03-20", 2, _line("F1", "2026-03-10", 99)),  # same sequence again: not older, applies
    ]


def _random_night(seed: int) -> list[Event]:
    """Snapshots and cures of a few accounts in a shuffled order, sequences sometimes missing."""
    rnd = random.Random(seed)
    events: list[Event] = []
    start = date(2026, 3, 10)
    for k in range(6):
        account = f"R{seed}-{k}"
        if rnd.random() < 0.7:
            events.append(_grant(account, income=rnd.choice([None, "8000.00", "30000.00"])))
        with_seq = rnd.random() < 0.8
        for n in range(1, 9):
            day = (start + timedelta(days=n)).isoformat()
            seq = n if with_seq else None
            if rnd.random() < 0.15:
                events.append(_cured(account, day, seq))
                continue
            bills = rnd.sample(range(4), rnd.randint(0, 3))
            lines = [
                _line(
                    f"{account}-b{b}",
                    (start - timedelta(days=b)).isoformat(),
                    n + b,
                    f"{rnd.randint(1, 3000)}.{rnd.randint(0, 99):02d}",
                )
                for b in sorted(bills)
            ]
            events.append(_snapshot(account, day, seq, *lines))
    head, tail = events[: len(events) // 3], events[len(events) // 3 :]
    rnd.shuffle(tail)
    return head + tail


# --- machinery --------------------------------------------------------------------------------


def _bodies(events: list[Event]) -> list[bytes]:
    return [
        json.dumps(
            new_envelope(
                t, payload, aggregate_id=payload["account_id"], producer="accounts", occurred_at=when, sequence=seq
            )
        ).encode()
        for t, payload, when, seq in events
    ]


def _apply(engine: Engine, handlers: dict[str, Any], bodies: list[bytes], batch: int) -> None:
    applier = EventApplier(
        "restructuring", engine, BUS, handlers, ProductRules(), FixedClock(), max_attempts=1, event_time=True
    )
    for k in range(0, len(bodies), batch):
        deliveries = [Delivery(body=b) for b in bodies[k : k + batch]]
        outcome = applier.apply_batch(deliveries)
        assert not outcome.dead_lettered and not outcome.retry, [d.last_error for d in deliveries]


def _rows(engine: Engine, table: Table, order: Any, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(table).order_by(order)).mappings().all()
    return [{k: v for k, v in row.items() if k not in skip} for row in rows]


def _state(engine: Engine) -> dict[str, Any]:
    outbox = _rows(engine, BUS.outbox, BUS.outbox.c.id, skip=("id", "event_id", "published_at", "created_at"))
    for row in outbox:
        row["payload"] = json.loads(row["payload"])
    return {
        "accounts": _rows(engine, AccountView.__table__, AccountView.account_id),
        "bills": _rows(engine, BillView.__table__, BillView.bill_id),
        "assessments": _rows(engine, RiskAssessmentRow.__table__, RiskAssessmentRow.id, skip=("id",)),
        "outbox": outbox,
    }


@pytest.fixture(params=["postgresql", "sqlite"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Engine]]:
    """Fresh restructuring databases on demand, dropped afterwards."""
    made: list[tuple[Engine, str]] = []

    def fresh() -> Engine:
        name = f"bt_rsb_{uuid.uuid4().hex[:12]}"
        url = f"{PG}/{name}" if request.param == "postgresql" else f"sqlite:///{tmp_path / name}.db"
        upgrade(registry.definition("restructuring"), url)
        engine = make_engine(url)
        made.append((engine, name))
        return engine

    yield fresh
    for engine, name in made:
        engine.dispose()
        if request.param == "postgresql":
            _drop(name)


def _same_as_one_by_one(
    fresh: Callable[[], Engine],
    setup: list[Event],
    night: list[Event],
    then: Callable[[Engine], list[Event]] | None = None,
) -> dict[str, Any]:
    """``then`` gives more setup events, from what the one-by-one database said after ``setup``."""
    setup_bodies, night_bodies = _bodies(setup), _bodies(night)
    one_by_one = fresh()
    _apply(one_by_one, HANDLERS, setup_bodies, 1)
    if then is not None:
        more = _bodies(then(one_by_one))
        _apply(one_by_one, HANDLERS, more, 1)
        setup_bodies += more
    _apply(one_by_one, HANDLERS, night_bodies, 1)
    expected = _state(one_by_one)
    for batch in (len(night_bodies), 3):
        engine = fresh()
        _apply(engine, HANDLERS, setup_bodies, 1)
        _apply(engine, HANDLERS, night_bodies, batch)
        assert _state(engine) == expected, f"batches of {batch}"
    return expected


def test_batch_gives_the_same_state_and_events_as_one_by_one(databases: Callable[[], Engine]) -> None:
    expected = _same_as_one_by_one(databases, _setup(), _night(), then=_accept)
    accounts = {a["account_id"]: a for a in expected["accounts"]}
    bills = {b["bill_id"]: b for b in expected["bills"]}
    # What the scenario is about, so that "equal" cannot mean "equally empty".
    assert accounts["A"]["delinquency_seq"] == 11 and accounts["A"]["max_dpd"] == 11
    assert bills["A1"]["dpd"] == 11 and bills["A2"]["dpd"] == 0 and bills["A2"]["unpaid_principal_fen"] == 0
    assert accounts["B"]["delinquency_seq"] == 8 and accounts["B"]["episode_assessed"]
    assert bills["B1"]["unpaid_principal_fen"] == 200000 and bills["B1"]["max_dpd"] == 11
    assert bills["C1"]["unpaid_principal_fen"] == 90000 and "C2" in bills
    assert bills["G1"]["as_of_seq"] == 50 and bills["G1"]["unpaid_principal_fen"] == 100000
    assert bills["P1"]["plan_id"] and bills["P1"]["dpd"] == 0 and bills["P2"]["dpd"] == 10
    assert bills["F1"]["dpd"] == 99 and bills["F2"]["dpd"] == 0 and accounts["F"]["max_dpd"] == 99
    assert accounts["D"]["max_dpd"] == 0 and not accounts["D"]["episode_assessed"]
    assessed = [
        (e["aggregate_id"], e["causation_id"] is not None) for e in expected["outbox"] if e["type"] == "risk.assessed"
    ]
    assert [a for a, _ in assessed] == ["G", "P", "P", "A", "B", "C", "E", "B", "F"] and all(c for _, c in assessed)
    assert len(expected["assessments"]) == len(assessed)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shuffled_nights_give_the_same_state_and_events(databases: Callable[[], Engine], seed: int) -> None:
    expected = _same_as_one_by_one(databases, [], _random_night(seed))
    assert any(e["type"] == "risk.assessed" for e in expected["outbox"])
