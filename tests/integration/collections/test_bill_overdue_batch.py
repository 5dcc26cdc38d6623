"""``bill.overdue`` in collections: runs of every length leave the same state.

The same wire bodies go into fresh collections databases, on PostgreSQL and on SQLite,
once one event per transaction, then in one batch, in batches of three and in one batch
with a poison event (the guarded retry pass, runs of one), all through the registered
handlers: a batch of one is the per-event path, so every length of run must leave the
same rows (``tests/support/batch_equivalence.py``). Beside the equivalence, the
scenario's own assertions say what those rows are.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.collections.delinquency import bill_overdue_batch
from services.collections.registry import HANDLERS
from shared.bus.handling import BatchHandler
from shared.clock import SHANGHAI
from tests.integration.collections.test_repayment_batch import Event, _bill, _grant, _snapshot, wire
from tests.support.batch_equivalence import Databases, Poison, Service, databases_fixture

pytestmark = pytest.mark.integration

COLLECTIONS = Service("collections")
databases = databases_fixture("collections")
START = datetime(2026, 3, 5, 23, 59, 56, tzinfo=SHANGHAI)


def test_registered_handler_is_the_batch_one() -> None:
    handler = HANDLERS["bill.overdue"]
    assert isinstance(handler, BatchHandler) and handler.fn is bill_overdue_batch


def _overdue(account: str, bill_id: str, day: str, dpd: int, unpaid: str, seq: int | None) -> Event:
    return (
        "bill.overdue",
        {
            "bill_id": bill_id,
            "account_id": account,
            "due_date": "2026-03-01",
            "business_date": day,
            "dpd": dpd,
            "unpaid_principal": unpaid,
        },
        seq,
    )


def _cured(account: str, day: str, seq: int) -> Event:
    return "account.cured", {"account_id": account, "business_date": day}, seq


def _setup() -> list[Event]:
    return [
        _grant("A"),
        _bill("A", "A-b1", "1000.00"),  # a known bill, no snapshot yet
        _grant("B"),
        _snapshot("B", "B-b1", "800.00", "820.00", 20),
        _cured("B", "2026-03-04", 21),  # cured, closed
        _grant("C"),
        _snapshot("C", "C-b1", "600.00", "620.00", 20),  # the bill's snapshot at seq 20
    ]


def _night() -> list[Event]:
    return [
        _overdue("A", "A-b1", "2026-03-05", 4, "1000.00", 30),
        _overdue("B", "B-b1", "2026-03-05", 4, "800.00", 31),  # still unpaid after the cure: reopened
        _overdue("C", "C-b1", "2026-03-04", 3, "500.00", 15),  # older than the bill's snapshot: ignored
        _overdue("N", "N-b1", "2026-03-05", 4, "300.00", None),  # no case, no bill: both created
        _overdue("A", "A-b2", "2026-03-05", 4, "0.00", 32),  # paid off: no reopening to judge
        # 2026-03-06 from here
        _cured("A", "2026-03-06", 40),  # another handler between two runs: A closes
        _overdue("A", "A-b1", "2026-03-06", 5, "900.00", 41),  # and reopens
        _overdue("A", "A-b1", "2026-03-06", 5, "950.00", 35),  # older than the one before: ignored
        _overdue("C", "C-b1", "2026-03-06", 5, "600.00", None),  # unsequenced, a later date: applies
    ]


def test_batches_give_the_same_bills_and_cases_as_one_by_one(databases: Databases) -> None:
    setup = wire(_setup(), START - timedelta(days=1))  # once: the cure's reply carries its event id
    expected = COLLECTIONS.assert_batches_agree(
        lambda: COLLECTIONS.prepared(databases, HANDLERS, setup),
        "bill.overdue",
        wire(_night(), START),
        one_batch=[5, 3],
        poison=Poison.plan_completed(3, "A", START),
        guarded=[3] + [1] * 8,
    )

    bills = {b["bill_id"]: (b["unpaid_fen"], b["dpd"], str(b["state_date"])) for b in expected["bills"]}
    assert bills["A-b1"] == (90000, 5, "2026-03-06") and bills["N-b1"] == (30000, 4, "2026-03-05")
    assert bills["C-b1"] == (60000, 5, "2026-03-06") and bills["A-b2"] == (0, 4, "2026-03-05")
    cases = {c["account_id"]: (c["status"], str(c["opened_on"])) for c in expected["cases"]}
    assert cases == {
        "A": ("open", "2026-03-06"),
        "B": ("open", "2026-03-05"),
        "C": ("open", "2026-01-01"),
        "N": ("open", "2026-03-05"),
    }
