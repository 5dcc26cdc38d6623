"""``repayment.applied`` in collections: runs of every length leave the same state.

The same wire bodies go into fresh collections databases, on PostgreSQL and on SQLite,
once one event per transaction, then in one batch, in batches of three and in one batch
with a poison event (the guarded retry pass, runs of one), all through the registered
handlers: a batch of one is the per-event path, so every length of run must leave the
same rows and outbox (``tests/support/batch_equivalence.py``). Beside the equivalence, the
scenario's own assertions say what those rows are.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from services.collections.registry import HANDLERS
from services.collections.models import Bill, CollectionCase
from services.collections.repayments import repayment_applied_batch
from shared.bus.handling import BatchHandler
from shared.clock import SHANGHAI
from shared.db import transaction
from shared.events import new_envelope
from tests.support.batch_equivalence import Databases, Poison, Service, databases_fixture, statements_sent

pytestmark = pytest.mark.integration

COLLECTIONS = Service("collections")
databases = databases_fixture("collections")
pg_databases = databases_fixture("collections", kinds=("postgresql",))
# a second before midnight: the night's first events are on 2026-03-05, the rest on 2026-03-06
START = datetime(2026, 3, 5, 23, 59, 56, tzinfo=SHANGHAI)

Event = tuple[str, dict[str, Any], "int | None"]  # type, payload, the producer's sequence


def test_registered_handler_is_the_batch_one() -> None:
    handler = HANDLERS["repayment.applied"]
    assert isinstance(handler, BatchHandler) and handler.fn is repayment_applied_batch


# --- events -----------------------------------------------------------------------------------


def wire(events: list[Event], start: datetime) -> list[bytes]:
    """``batch_equivalence.bodies`` with the producer's sequence: each event a second after
    the one before, every other one with a correlation id of its own."""
    return [
        json.dumps(
            new_envelope(
                event_type,
                payload,
                aggregate_id=payload["account_id"],
                producer="accounts",
                occurred_at=start + timedelta(seconds=k),
                sequence=seq,
                correlation_id=f"checkout-{k}" if k % 2 else None,
            )
        ).encode()
        for k, (event_type, payload, seq) in enumerate(events)
    ]


def _principal(bill_id: str, amount: str) -> dict[str, str]:
    return {"target": "bill", "target_id": bill_id, "component": "principal", "amount": amount}


def _pay(payment_id: str, account: str, seq: int | None, allocations: list[dict[str, str]], total: str) -> Event:
    amount = sum((float(a["amount"]) for a in allocations), 0.0)
    return (
        "repayment.applied",
        {
            "payment_id": payment_id,
            "account_id": account,
            "amount": f"{amount:.2f}",
            "allocations": allocations,
            "credit_balance": "0.00",
            "total_overdue": total,
        },
        seq,
    )


def _grant(account: str) -> Event:
    return (
        "credit.line.granted",
        {
            "account_id": account,
            "customer_id": f"c-{account}",
            "identity_hash": "h" * 16,
            "credit_limit": "5000.00",
            "name": "张三",
            "phone": "13800001111",
            "opened_on": "2026-01-01",
        },
        None,
    )


def _bill(account: str, bill_id: str, amount: str) -> Event:
    return (
        "bill.issued",
        {
            "bill_id": bill_id,
            "account_id": account,
            "statement_date": "2026-02-01",
            "due_date": "2026-02-20",
            "amount": amount,
        },
        None,
    )


def _overdue(account: str, bill_id: str, day: str, unpaid: str, seq: int) -> Event:
    return (
        "bill.overdue",
        {
            "bill_id": bill_id,
            "account_id": account,
            "due_date": "2026-03-01",
            "business_date": day,
            "dpd": 3,
            "unpaid_principal": unpaid,
        },
        seq,
    )


def _snapshot(account: str, bill_id: str, unpaid: str, total: str, seq: int) -> Event:
    return (
        "account.delinquency.updated",
        {
            "account_id": account,
            "business_date": "2026-03-04",
            "max_dpd": 3,
            "overdue_principal": unpaid,
            "penalty_interest": "10.00",
            "late_fees": "10.00",
            "total_overdue": total,
            "bills": [
                {
                    "bill_id": bill_id,
                    "due_date": "2026-03-01",
                    "dpd": 3,
                    "unpaid_principal": unpaid,
                    "penalty_interest": "10.00",
                    "late_fee": "10.00",
                }
            ],
        },
        seq,
    )


def _setup() -> list[Event]:
    return [
        _grant("A"),
        _bill("A", "A-b1", "1000.00"),
        _bill("A", "A-b2", "500.00"),
        _grant("B"),
        _overdue("B", "B-b1", "2026-03-04", "800.00", 20),  # the bill's snapshot: seq 20
        _snapshot("B", "B-b1", "800.00", "820.00", 20),  # the case's delinquency snapshot: seq 20
        _grant("C"),
        _overdue("C", "C-b1", "2026-03-04", "600.00", 10),  # no delinquency snapshot yet
        _pay("pay-old", "C", 1, [_principal("C-b1", "1.00")], "599.00"),  # stale for the bill: 1 <= 10
    ]


def _night() -> list[Event]:
    return [
        _pay(
            "pay-a1",
            "A",
            5,
            [
                _principal("A-b1", "300.00"),
                {"target": "bill", "target_id": "A-b1", "component": "late_fee", "amount": "10.00"},
                {"target": "plan", "target_id": "A-p1", "component": "plan", "amount": "50.00"},
            ],
            "700.00",
        ),
        _pay("pay-b1", "B", 15, [_principal("B-b1", "200.00")], "620.00"),  # older than both snapshots: only kept
        _pay("pay-n1", "N", None, [_principal("N-b1", "100.00")], "0.00"),  # no case, no bill: the case is opened
        _pay("pay-a2", "A", 6, [_principal("A-b1", "800.00"), _principal("A-b2", "100.00")], "400.00"),  # A again
        # 2026-03-06 from here
        _pay("pay-a1", "A", 5, [_principal("A-b2", "30.00")], "370.00"),  # the payment id again: counted once
        _pay("pay-n2", "N", 2, [], "50.00"),  # the case the run opened
        _overdue("C", "C-b1", "2026-03-05", "600.00", 30),  # a per-event handler between two runs
        _pay("pay-c1", "C", 29, [_principal("C-b1", "100.00")], "500.00"),  # older than the bill's snapshot
        _pay("pay-c2", "C", None, [_principal("C-b1", "100.00")], "400.00"),  # unsequenced: applies
        _pay("pay-old", "C", 1, [_principal("C-b1", "50.00")], "350.00"),  # stored before the night
        _pay(
            "pay-b2",
            "B",
            25,
            [
                _principal("B-b1", "100.00"),
                {"target": "bill", "target_id": "B-b1", "component": "penalty_interest", "amount": "5.00"},
            ],
            "715.00",
        ),
    ]


def _prepared(databases: Databases, setup: list[Event]) -> Engine:
    return COLLECTIONS.prepared(databases, HANDLERS, wire(setup, START - timedelta(days=1)))


# --- tests ------------------------------------------------------------------------------------


def test_batches_give_the_same_repayments_bills_and_cases_as_one_by_one(databases: Databases) -> None:
    expected = COLLECTIONS.assert_batches_agree(
        lambda: _prepared(databases, _setup()),
        "repayment.applied",
        wire(_night(), START),
        one_batch=[6, 4],  # payments | a bill's snapshot | payments
        poison=Poison.plan_completed(3, "A", START),
        guarded=[3] + [1] * 10,
    )

    # what the scenario says, so that "equal" cannot mean "equally empty"
    repayments = {
        r["payment_id"]: (r["account_id"], r["amount_fen"], str(r["applied_on"])) for r in expected["repayments"]
    }
    assert repayments == {
        "pay-a1": ("A", 36000, "2026-03-05"),
        "pay-a2": ("A", 90000, "2026-03-05"),
        "pay-b1": ("B", 20000, "2026-03-05"),
        "pay-b2": ("B", 10500, "2026-03-06"),
        "pay-c1": ("C", 10000, "2026-03-06"),
        "pay-c2": ("C", 10000, "2026-03-06"),
        "pay-n1": ("N", 10000, "2026-03-05"),
        "pay-n2": ("N", 0, "2026-03-06"),
        "pay-old": ("C", 100, "2026-03-05"),
    }  # the setup day's last seconds: past midnight
    bills = {b["bill_id"]: b["unpaid_fen"] for b in expected["bills"]}
    assert bills == {"A-b1": 0, "A-b2": 40000, "B-b1": 70000, "C-b1": 50000}
    cases = {c["account_id"]: (c["status"], str(c["opened_on"]), c["total_overdue_fen"]) for c in expected["cases"]}
    assert cases == {
        "A": ("open", "2026-01-01", 40000),
        "B": ("open", "2026-01-01", 71500),
        "C": ("open", "2026-01-01", 40000),
        "N": ("open", "2026-03-05", 5000),
    }
    assert expected["outbox"] == []


def test_a_run_costs_a_fixed_number_of_statements(databases: Databases) -> None:
    """Set-based: a run of 60 payments (and 60 cases to open) runs the statements a run of 6 does."""
    setup = [_grant("K0"), _bill("K0", "K0-b1", "1000.00")]
    for prefix, n in (("small", 6), ("large", 60)):
        setup += [_bill(f"{prefix}-{k}", f"{prefix}-{k}-b1", "100.00") for k in range(n)]
    engine = COLLECTIONS.prepared(databases, HANDLERS, [])
    COLLECTIONS.apply(engine, HANDLERS, wire(setup, START - timedelta(days=1)), 100)

    def night(n: int, prefix: str) -> list[bytes]:
        payments = [
            _pay(f"{prefix}-pay-{k}", f"{prefix}-{k}", 7, [_principal(f"{prefix}-{k}-b1", "10.00")], "90.00")
            for k in range(n)
        ]
        payments += [_pay(f"{prefix}-new-{k}", f"{prefix}-new-{k}", 7, [], "0.00") for k in range(n)]
        payments += [
            _pay(f"{prefix}-k0", "K0", None, [_principal("K0-b1", "10.00")], "990.00"),
            _pay(f"{prefix}-pay-0", f"{prefix}-0", 8, [_principal(f"{prefix}-0-b1", "10.00")], "80.00"),
        ]
        return wire(payments, START)

    small, large = (
        COLLECTIONS.statements(engine, HANDLERS, night(n, prefix)) for n, prefix in ((6, "small"), (60, "large"))
    )
    assert len(small) == len(large), large
    touched = [_kind(s) for s in large if _kind(s)]
    assert touched == [
        "SELECT repayments",
        "SELECT bills",
        "SELECT cases",  # the known, the bills, the locks
        "INSERT cases",
        "SELECT cases",  # the cases to open, then locked
        "UPDATE bills",
        "UPDATE cases",
        "INSERT repayments",
    ], touched  # flushed, then the new ids
    found = COLLECTIONS.state(engine)
    assert len(found["repayments"]) == 2 * (6 + 60) + 2
    assert {b["bill_id"]: b["unpaid_fen"] for b in found["bills"]}["large-0-b1"] == 9000  # its second payment id: once
    assert len(found["cases"]) == 1 + 2 * (6 + 60)


def _kind(statement: str) -> str:
    """``SELECT repayments``, ``UPDATE bills``...: what a statement does to which of the three tables."""
    verb = statement.split()[0]
    for table in ("repayments", "bills", "cases"):
        if f" {table}" in statement and "inbox" not in statement:
            return f"{verb} {table}"
    return ""


def test_rows_already_in_the_session_see_the_payment(databases: Databases) -> None:
    engine = _prepared(databases, _setup())
    with transaction(engine) as session:
        case = session.scalar(select(CollectionCase).where(CollectionCase.account_id == "A"))
        bill = session.get(Bill, "A-b1")
        assert case is not None and bill is not None and bill.unpaid_fen == 100000
        repayment_applied_batch(COLLECTIONS.handler_run(session, wire(_night()[:1], START)))
        assert (bill.unpaid_fen, case.total_overdue_fen) == (70000, 70000)
    with transaction(engine) as session:
        stored = session.get(Bill, "A-b1")
        assert stored is not None and stored.unpaid_fen == 70000


def test_a_case_opened_by_another_worker_meanwhile_is_taken(pg_databases: Databases) -> None:
    """Two workers of collections: the case the run misses is being opened by another
    transaction. The run's insert waits for it and skips it; the run locks and updates it."""
    databases = pg_databases
    engine = _prepared(databases, [_grant("K0")])
    other = engine.connect()
    other_tx = other.begin()
    other.execute(
        insert(CollectionCase.__table__).values(
            account_id="N",
            status="open",
            opened_on=START.date() - timedelta(days=3),
            max_dpd=0,
            overdue_principal_fen=0,
            total_overdue_fen=0,
            plan_active=False,
            promise_broken=False,
            phone_reported_wrong=False,
        )
    )
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with transaction(engine) as session:
                repayment_applied_batch(
                    COLLECTIONS.handler_run(
                        session,
                        wire([_pay("pay-k0", "K0", None, [], "1.00"), _pay("pay-n", "N", None, [], "42.00")], START),
                    )
                )
        except BaseException as exc:  # noqa: BLE001
            failed.append(exc)

    with statements_sent(engine) as sent:
        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(1.0)  # the run is waiting on the uncommitted case
        assert worker.is_alive()
        other_tx.commit()
        other.close()
        worker.join(timeout=30)
    assert not worker.is_alive() and not failed, failed
    assert any(s.startswith("INSERT INTO cases") for s in sent)  # the run did miss the case
    cases = {c["account_id"]: (str(c["opened_on"]), c["total_overdue_fen"]) for c in COLLECTIONS.state(engine)["cases"]}
    assert cases == {"K0": ("2026-01-01", 100), "N": ("2026-03-02", 4200)}
