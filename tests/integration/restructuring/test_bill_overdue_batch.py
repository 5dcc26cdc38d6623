"""``bill.overdue`` in restructuring: runs of every length leave the same state.

The same wire bodies go into fresh restructuring databases, on PostgreSQL and on SQLite,
once one event per transaction, then in one batch, in batches of three and in one batch
with a poison event (the guarded retry pass, runs of one), all through the registered
handlers: a batch of one is the per-event path, so every length of run must leave the
same rows and outbox (the ``risk.assessed`` events with their causation and
correlation ids) (``tests/support/batch_equivalence.py``). Beside the equivalence, the
scenario's own assertions say what those rows are.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.restructuring.bills import bill_overdue_batch
from services.restructuring.registry import HANDLERS
from shared.bus.handling import BatchHandler
from shared.clock import SHANGHAI
from tests.support.batch_equivalence import Databases, Event, Poison, Service, bodies, databases_fixture

pytestmark = pytest.mark.integration

RESTRUCTURING = Service("restructuring")
databases = databases_fixture("restructuring")
START = datetime(2026, 3, 11, 0, 30, tzinfo=SHANGHAI)


def test_registered_handler_is_the_batch_one() -> None:
    handler = HANDLERS["bill.overdue"]
    assert isinstance(handler, BatchHandler) and handler.fn is bill_overdue_batch


# --- scenario ---------------------------------------------------------------------------------


def _grant(account: str, income: str) -> Event:
    return "credit.line.granted", {
        "account_id": account,
        "customer_id": f"c-{account}",
        "identity_hash": "h" * 16,
        "credit_limit": "5000.00",
        "name": "张三",
        "phone": "13800005678",
        "opened_on": "2024-01-01",
        "monthly_income": income,
    }


def _issued(account: str, bill: str, amount: str, due: str = "2026-03-10") -> Event:
    return "bill.issued", {
        "bill_id": bill,
        "account_id": account,
        "statement_date": "2026-02-18",
        "due_date": due,
        "amount": amount,
    }


def _overdue(
    account: str, bill: str, unpaid: str, on: str = "2026-03-11", dpd: int = 1, due: str = "2026-03-10"
) -> Event:
    return "bill.overdue", {
        "bill_id": bill,
        "account_id": account,
        "due_date": due,
        "business_date": on,
        "dpd": dpd,
        "unpaid_principal": unpaid,
    }


def _cured(account: str, on: str) -> Event:
    return "account.cured", {"account_id": account, "business_date": on}


def _snapshot(account: str, bill: str) -> Event:
    return "account.delinquency.updated", {
        "account_id": account,
        "business_date": "2026-03-11",
        "max_dpd": 1,
        "overdue_principal": "500.00",
        "penalty_interest": "0.00",
        "late_fees": "0.00",
        "total_overdue": "500.00",
        "bills": [
            {
                "bill_id": bill,
                "due_date": "2026-03-10",
                "dpd": 1,
                "unpaid_principal": "500.00",
                "penalty_interest": "0.00",
                "late_fee": "0.00",
            }
        ],
    }


def _setup() -> list[Event]:
    return [
        _grant("R1", "20000.00"),
        _issued("R1", "R1-b1", "1000.00"),
        _issued("R1", "R1-b2", "3000.00"),
        _grant("R2", "3000.00"),
        _issued("R2", "R2-b0", "900.00", due="2026-02-10"),
        _overdue("R2", "R2-b0", "900.00", on="2026-02-11", due="2026-02-10"),  # assessed ...
        _cured("R2", "2026-03-05"),  # ... then cured: the next overdue opens a new episode
        _issued("R2", "R2-b1", "800.00"),
    ]


def _night() -> list[Event]:
    return [
        _overdue("R1", "R1-b1", "1000.00"),  # opens R1's episode: assessed
        _overdue("R1", "R1-b2", "2500.00"),  # the same episode: not again
        _overdue("N1", "N1-b1", "400.00"),  # an account no event named yet: assessed on what it has
        _overdue("R2", "R2-b1", "800.00"),  # after its cure: a new episode, assessed again
        _cured("R1", "2026-03-11"),  # a per-event handler reads the account the run wrote ...
        _overdue("R1", "R1-b1", "1000.00"),  # ... a late repeat on the cure's date: no new episode
        _overdue("N1", "N1-b1", "999.00", on="2026-03-10", dpd=0),  # older than the stored one: figures kept
        _snapshot("N3", "N3-b1"),  # another batch handler's run creates the row ...
        _overdue("N3", "N3-b1", "500.00"),  # ... already assessed by the snapshot
    ]


# --- tests ------------------------------------------------------------------------------------


def test_batches_give_the_same_projection_and_assessments_as_one_by_one(databases: Databases) -> None:
    setup = bodies(_setup(), START - timedelta(days=1))  # once: every pass has the same event ids
    expected = RESTRUCTURING.assert_batches_agree(
        lambda: RESTRUCTURING.prepared(databases, HANDLERS, setup),
        "bill.overdue",
        bodies(_night(), START),
        one_batch=[4, 2, 1],  # overdue x4 | cured | overdue x2 | snapshot | overdue
        poison=Poison.plan_completed(2, "R1", START),
        guarded=[2] + [1] * 7,
    )

    # what the scenario says, so that "equal" cannot mean "equally empty"
    assessed = [
        (e["aggregate_id"], str(e["occurred_at"].date())) for e in expected["outbox"] if e["type"] == "risk.assessed"
    ]
    assert [a for a, _ in assessed] == ["R2", "R1", "N1", "R2", "N3"]
    bills = {b["bill_id"]: (b["unpaid_principal_fen"], b["dpd"], str(b["overdue_on"])) for b in expected["bill_views"]}
    assert bills["R2-b1"] == (80_000, 1, "2026-03-11")
    assert bills["R1-b2"] == (0, 0, "2026-03-11")  # cleared by the cure that followed
    assert bills["N1-b1"] == (40_000, 1, "2026-03-10")
    accounts = {a["account_id"]: (a["episode_assessed"], str(a["cured_on"])) for a in expected["account_views"]}
    assert accounts["R1"] == (False, "2026-03-11") and accounts["R2"] == (True, "2026-03-05")


pg_databases = databases_fixture("restructuring", kinds=("postgresql",))


def test_two_workers_runs_on_one_account_assess_its_episode_once(pg_databases: Databases) -> None:
    """Two consumers take ``bill.overdue`` of two bills of one account at the same time: the
    second run waits on the first's lock of the account, then reads it already assessed."""
    engine = RESTRUCTURING.prepared(pg_databases, HANDLERS, bodies(_setup(), START - timedelta(days=1)))
    first, second = bodies([_overdue("R1", "R1-b1", "1000.00"), _overdue("R1", "R1-b2", "2500.00")], START)
    finished = threading.Event()

    def second_worker() -> None:
        with Session(engine) as session, session.begin():
            bill_overdue_batch(RESTRUCTURING.handler_run(session, [second]))
        finished.set()

    with Session(engine) as session, session.begin():
        bill_overdue_batch(RESTRUCTURING.handler_run(session, [first]))
        other = threading.Thread(target=second_worker)
        other.start()
        assert not finished.wait(1.0), "the second run did not wait for the first one's account"
    other.join(timeout=30)
    assert finished.is_set()
    with engine.connect() as conn:
        assessments = conn.execute(text("SELECT count(*) FROM risk_assessments WHERE account_id = 'R1'")).scalar()
        replies = conn.execute(
            text("SELECT count(*) FROM outbox WHERE type = 'risk.assessed' AND aggregate_id = 'R1'")
        ).scalar()
    assert (assessments, replies) == (1, 1)
