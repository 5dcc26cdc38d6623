"""``account.cured`` in collections: runs of every length leave the same state.

The same wire bodies go into fresh collections databases, on PostgreSQL and on SQLite,
once one event per transaction, then in one batch, in batches of three and in one batch
with a poison event (the guarded retry pass, runs of one), all through the registered
handlers: a batch of one is the per-event path, so every length of run must leave the
same rows and outbox (the ``contact.suppressed`` and
``collection.case.closed`` it announces, in order) (``tests/support/batch_equivalence.py``). Beside the equivalence, the
scenario's own assertions say what those rows are.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, update

from services.collections.cures import account_cured_batch
from services.collections.registry import HANDLERS
from services.collections.models import CollectionCase, CollectorTask, ContactAttempt, PromiseToPay
from shared.bus.handling import BatchHandler
from shared.clock import SHANGHAI
from shared.db import transaction
from tests.integration.collections.test_repayment_batch import (
    Event,
    _bill,
    _grant,
    _overdue,
    _pay,
    _principal,
    _snapshot,
    wire,
)
from tests.support.batch_equivalence import Databases, Poison, Service, databases_fixture

pytestmark = pytest.mark.integration

COLLECTIONS = Service("collections")
databases = databases_fixture("collections")
pg_databases = databases_fixture("collections", kinds=("postgresql",))
START = datetime(2026, 3, 5, 23, 59, 56, tzinfo=SHANGHAI)  # the night's first events on 03-05, the rest 03-06


def test_registered_handler_is_the_batch_one() -> None:
    handler = HANDLERS["account.cured"]
    assert isinstance(handler, BatchHandler) and handler.fn is account_cured_batch


def _cured(account: str, day: str, seq: int | None) -> Event:
    return "account.cured", {"account_id": account, "business_date": day}, seq


def _setup() -> list[Event]:
    events: list[Event] = []
    for account in ("A", "B", "C", "D", "P"):
        events += [
            _grant(account),
            _bill(account, f"{account}-b0", "100.00"),  # due 02-20: overdue
            _overdue(account, f"{account}-b1", "2026-03-04", "600.00", 10),
            _snapshot(account, f"{account}-b1", "600.00", "620.00", 20),
        ]
    return events


def _contacts_tasks_promises(engine: Engine) -> None:
    """What collections' jobs and collectors would have left: queued, sending and sent
    contacts, open and done tasks, pending and broken promises; P's case in a plan."""
    at = datetime(2026, 3, 5, 0, 0, tzinfo=timezone.utc)
    with transaction(engine) as session:
        for account in ("A", "B", "C", "D", "P"):
            for k, (status, kind) in enumerate(
                (("sent", "sms"), ("queued", "sms"), ("sending", "sms"), ("queued", "plan_reminder"))
            ):
                session.add(
                    ContactAttempt(
                        plan_key=f"{account}|{k}",
                        account_id=account,
                        business_date=date(2026, 3, 5),
                        channel="sms",
                        kind=kind,
                        template=f"t{k}",
                        stage="early",
                        dpd=4,
                        trigger="scheduled",
                        status=status,
                        planned_for=at,
                        deferrals=0,
                        send_attempts=0,
                    )
                )
            for kind, status in (("call", "open"), ("agency", "open"), ("legal", "done")):
                session.add(
                    CollectorTask(
                        task_id=f"{account}-{kind}",
                        account_id=account,
                        kind=kind,
                        stage="early",
                        dpd=4,
                        amount_fen=100,
                        trigger="scheduled",
                        created_on=date(2026, 3, 4),
                        due_by=date(2026, 3, 5),
                        status=status,
                    )
                )
            for status in ("pending", "broken"):
                session.add(
                    PromiseToPay(
                        account_id=account,
                        task_id=f"{account}-call",
                        recorded_on=date(2026, 3, 3),
                        promised_date=date(2026, 3, 6),
                        pause_until=date(2026, 3, 6),
                        status=status,
                    )
                )
        session.execute(
            update(CollectionCase)
            .where(CollectionCase.account_id == "P")
            .values(plan_active=True, active_plan_id="P-plan")
        )


def _night() -> list[Event]:
    return [
        _cured("A", "2026-03-05", 30),  # closes, suppresses A's three waiting contacts, cancels two tasks
        _cured("B", "2026-03-04", 15),  # older than B's snapshot (seq 20, same day): ignored
        _cured("P", "2026-03-05", 31),  # in a plan: the overdue cleared, nothing closed or suppressed
        _cured("N", "2026-03-05", None),  # no case yet: opened, then closed
        _cured("A", "2026-03-05", 32),  # A again: already closed, nothing more to say
        # 2026-03-06 from here
        _cured("C", "2026-03-06", None),  # unsequenced on a later date
        _pay("pay-d", "D", 40, [_principal("D-b1", "100.00")], "500.00"),  # another handler between two runs
        _cured("D", "2026-03-06", 41),
        _cured("D", "2026-03-06", 35),  # older than the cure before it: ignored
        _cured("B", "2026-03-06", 42),
    ]


def _prepared(databases: Databases) -> Engine:
    return COLLECTIONS.prepared(
        databases, HANDLERS, wire(_setup(), START - timedelta(days=1)), then=_contacts_tasks_promises
    )


def test_batches_give_the_same_cases_contacts_and_events_as_one_by_one(databases: Databases) -> None:
    expected = COLLECTIONS.assert_batches_agree(
        lambda: _prepared(databases),
        "account.cured",
        wire(_night(), START),
        one_batch=[6, 3],
        poison=Poison.plan_completed(4, "A", START),
        guarded=[4] + [1] * 9,
    )

    # what the scenario says, so that "equal" cannot mean "equally empty"
    cases = {c["account_id"]: (c["status"], c["closed_reason"], c["total_overdue_fen"]) for c in expected["cases"]}
    assert cases == {
        "A": ("closed", "cured", 0),
        "B": ("closed", "cured", 0),
        "C": ("closed", "cured", 0),
        "D": ("closed", "cured", 0),
        "N": ("closed", "cured", 0),
        "P": ("open", None, 0),
    }
    waiting = {
        (c["account_id"], c["template"]): c["status"] for c in expected["contact_attempts"] if c["template"] != "t0"
    }
    assert {k: v for k, v in waiting.items() if k[0] == "A"} == {
        ("A", "t1"): "suppressed",
        ("A", "t2"): "suppressed",
        ("A", "t3"): "suppressed",
    }
    assert {k: v for k, v in waiting.items() if k[0] == "P"} == {
        ("P", "t1"): "queued",
        ("P", "t2"): "sending",
        ("P", "t3"): "queued",
    }
    tasks = {t["task_id"]: t["status"] for t in expected["collector_tasks"]}
    assert (tasks["A-call"], tasks["A-agency"], tasks["A-legal"], tasks["P-call"]) == (
        "cancelled",
        "cancelled",
        "done",
        "open",
    )
    promises = {(r["account_id"], r["status"], str(r["decided_on"])) for r in expected["promises"]}
    assert ("A", "kept", "2026-03-05") in promises and ("C", "kept", "2026-03-06") in promises
    assert ("P", "pending", "None") in promises and ("A", "broken", "None") in promises
    bills = {b["bill_id"]: b["unpaid_fen"] for b in expected["bills"]}
    assert bills["A-b1"] == 0 and bills["P-b1"] == 0
    closed = [(e["type"], e["aggregate_id"]) for e in expected["outbox"] if e["type"] == "collection.case.closed"]
    assert closed == [("collection.case.closed", a) for a in ("A", "N", "C", "D", "B")]
    assert sum(e["type"] == "contact.suppressed" for e in expected["outbox"]) == 12  # three each of A, B, C, D


def test_a_run_costs_a_fixed_number_of_statements(pg_databases: Databases) -> None:
    """Set-based: a run of 40 cures runs the statements a run of 4 does (on PostgreSQL: on
    SQLite the ORM inserts each case closure alone to read its id back, cheap in process)."""
    engine = _prepared(pg_databases)
    for prefix, n in (("small", 4), ("large", 40)):
        COLLECTIONS.apply(
            engine,
            HANDLERS,
            wire(
                [
                    e
                    for k in range(n)
                    for e in (
                        _grant(f"{prefix}-{k}"),
                        _overdue(f"{prefix}-{k}", f"{prefix}-{k}-b1", "2026-03-04", "60.00", 10),
                    )
                ],
                START - timedelta(days=1),
            ),
            100,
        )

    def cures(n: int, prefix: str) -> list[bytes]:
        return wire([_cured(f"{prefix}-{k}", "2026-03-05", 30) for k in range(n)], START)

    small, large = (
        COLLECTIONS.statements(engine, HANDLERS, cures(n, prefix)) for n, prefix in ((4, "small"), (40, "large"))
    )
    assert len(small) == len(large), large
    found = {c["account_id"]: c["status"] for c in COLLECTIONS.state(engine)["cases"]}
    assert all(found[f"large-{k}"] == "closed" for k in range(40))
