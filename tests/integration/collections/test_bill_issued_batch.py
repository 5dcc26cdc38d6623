"""``bill.issued`` in collections: runs of every length leave the same state.

The same wire bodies go into fresh collections databases, on PostgreSQL and on SQLite,
once one event per transaction, then in one batch, in batches of three and in one batch
with a poison event (the guarded retry pass, runs of one), all through the registered
handlers: a batch of one is the per-event path, so every length of run must leave the
same rows and outbox (``tests/support/batch_equivalence.py``). Beside the equivalence, the
scenario's own assertions say what those rows are.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.collections.bills import bill_issued_batch
from services.collections.registry import HANDLERS
from services.collections.models import CollectionCase
from shared.bus.handling import BatchHandler
from shared.clock import SHANGHAI
from shared.db import transaction
from tests.support.batch_equivalence import Databases, Event, Poison, Service, bodies, databases_fixture

pytestmark = pytest.mark.integration

COLLECTIONS = Service("collections")
databases = databases_fixture("collections")
START = datetime(2026, 3, 20, 0, 10, tzinfo=SHANGHAI)


def test_registered_handler_is_the_batch_one() -> None:
    handler = HANDLERS["bill.issued"]
    assert isinstance(handler, BatchHandler) and handler.fn is bill_issued_batch


# --- scenario ---------------------------------------------------------------------------------


def _issued(account: str, bill: str, amount: str = "1000.00", statement_date: str = "2026-03-20") -> Event:
    return "bill.issued", {
        "bill_id": bill,
        "account_id": account,
        "statement_date": statement_date,
        "due_date": "2026-04-09",
        "amount": amount,
    }


def _overdue(account: str, bill: str, unpaid: str) -> Event:
    return "bill.overdue", {
        "bill_id": bill,
        "account_id": account,
        "due_date": "2026-03-10",
        "business_date": "2026-03-11",
        "dpd": 1,
        "unpaid_principal": unpaid,
    }


def _cured(account: str, on: str) -> Event:
    return "account.cured", {"account_id": account, "business_date": on}


def _setup() -> list[Event]:
    return [
        _overdue("K1", "K1-b0", "300.00"),  # an open case with a bill it knows from a snapshot
        _overdue("K2", "K2-b0", "200.00"),
        _cured("K2", "2026-03-15"),  # cured before the statement: reopens
        _overdue("K3", "K3-b0", "200.00"),
        _cured("K3", "2026-03-25"),  # cured after it: stays closed
    ]


def _night() -> list[Event]:
    return [
        _issued("N1", "N1-b1"),  # a new account: its case opens on the statement date
        _issued("K1", "K1-b0", "500.00"),  # known from the snapshot: not stored again
        _issued("K1", "K1-b1", "700.00"),
        _issued("K2", "K2-b1"),
        _issued("K3", "K3-b1"),
        _issued("N1", "N1-b1"),  # again in the run: nothing changes
        _overdue("N2", "N2-b0", "80.00"),  # a per-event handler opens a case and stores a bill ...
        _issued("N2", "N2-b0", "100.00"),  # ... the run sees both
        _issued("N2", "N2-b1", "50.00", statement_date="2026-03-21"),
        _cured("N1", "2026-03-20"),  # a per-event handler reads the case and bill the run wrote
        _issued("N1", "N1-b2", statement_date="2026-03-21"),  # cured on the 20th: reopens
    ]


# --- tests ------------------------------------------------------------------------------------


def test_batches_give_the_same_cases_bills_and_events_as_one_by_one(databases: Databases) -> None:
    setup = bodies(_setup(), START - timedelta(days=1))  # once: every pass has the same event ids
    expected = COLLECTIONS.assert_batches_agree(
        lambda: COLLECTIONS.prepared(databases, HANDLERS, setup),
        "bill.issued",
        bodies(_night(), START),
        one_batch=[6, 2, 1],  # issued x6 | overdue | issued x2 | cured | issued
        poison=Poison.plan_completed(3, "K1", START),
        guarded=[3] + [1] * 9,
    )

    # what the scenario says, so that "equal" cannot mean "equally empty"
    cases = {c["account_id"]: (c["status"], str(c["opened_on"])) for c in expected["cases"]}
    assert cases == {
        "K1": ("open", "2026-03-11"),
        "K2": ("open", "2026-03-20"),
        "K3": ("closed", "2026-03-11"),
        "N1": ("open", "2026-03-21"),
        "N2": ("open", "2026-03-11"),
    }
    bills = {b["bill_id"]: (b["amount_fen"], b["unpaid_fen"]) for b in expected["bills"]}
    assert bills["K1-b0"] == (30_000, 30_000) and bills["K1-b1"] == (70_000, 70_000)
    assert bills["N2-b0"] == (8_000, 8_000) and bills["N2-b1"] == (5_000, 5_000)
    assert set(bills) == {"K1-b0", "K1-b1", "K2-b0", "K2-b1", "K3-b0", "K3-b1", "N1-b1", "N1-b2", "N2-b0", "N2-b1"}


def test_a_run_costs_a_fixed_number_of_statements(databases: Databases) -> None:
    """Set-based: a run of 60 bills runs the statements a run of 6 does."""
    engine = COLLECTIONS.prepared(databases, HANDLERS, bodies([_overdue("K0", "K0-b0", "10.00")], START))

    def night(n: int, prefix: str) -> list[bytes]:
        return bodies(
            [_issued(f"{prefix}-{k}", f"{prefix}-{k}-b", f"{k}.00") for k in range(n)]
            + [_issued("K0", f"{prefix}-K0-b", "9.00")],
            START,
        )

    small, large = (
        COLLECTIONS.statements(engine, HANDLERS, night(n, prefix)) for n, prefix in ((6, "small"), (60, "large"))
    )
    assert len(small) == len(large), large
    assert len(COLLECTIONS.state(engine)["bills"]) == 69


def test_a_case_already_in_the_session_sees_what_the_run_changed(databases: Databases) -> None:
    engine = COLLECTIONS.prepared(databases, HANDLERS, bodies(_setup(), START - timedelta(days=1)))
    with transaction(engine) as session:
        held = session.query(CollectionCase).filter_by(account_id="K2").one()
        assert held.status == "closed"
        bill_issued_batch(COLLECTIONS.handler_run(session, bodies([_issued("K2", "K2-b1")], START)))
        assert (held.status, str(held.opened_on)) == ("open", "2026-03-20")
