"""``risk.assessed`` in collections: runs of every length leave the same state.

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

from services.collections.risk_assessments import risk_assessed_batch
from services.collections.registry import HANDLERS
from shared.bus.handling import BatchHandler
from shared.clock import SHANGHAI
from tests.integration.collections.test_repayment_batch import Event, _grant, wire
from tests.support.batch_equivalence import Databases, Poison, Service, databases_fixture

pytestmark = pytest.mark.integration

COLLECTIONS = Service("collections")
databases = databases_fixture("collections")
START = datetime(2026, 3, 5, 23, 59, 56, tzinfo=SHANGHAI)  # the night's first events on 03-05, the rest 03-06


def test_registered_handler_is_the_batch_one() -> None:
    handler = HANDLERS["risk.assessed"]
    assert isinstance(handler, BatchHandler) and handler.fn is risk_assessed_batch


def _graded(account: str, grade: str, seq: int | None) -> Event:
    return (
        "risk.assessed",
        {"account_id": account, "score": 500, "grade": grade, "factors": [{"name": "max_dpd", "points": -40}]},
        seq,
    )


def _night() -> list[Event]:
    return [
        _graded("A", "B", 10),
        _graded("B", "D", 10),
        _graded("A", "E", 9),  # older than A's grade just taken: ignored
        _graded("N", "A", None),  # no case yet: opened on the event's date
        _graded("N", "C", 3),  # the unsequenced grade before it does not stop a sequenced one
        # 2026-03-06 from here
        _grant("P"),  # another handler between two runs
        _graded("B", "E", None),  # unsequenced: applies
        _graded("B", "A", 11),
        _graded("P", "D", 2),
    ]


def test_batches_give_the_same_cases_as_one_by_one(databases: Databases) -> None:
    setup = wire([_grant("A"), _grant("B"), _graded("B", "C", 10)], START - timedelta(days=1))
    expected = COLLECTIONS.assert_batches_agree(
        lambda: COLLECTIONS.prepared(databases, HANDLERS, setup),
        "risk.assessed",
        wire(_night(), START),
        one_batch=[5, 3],
        poison=Poison.plan_completed(3, "A", START),
        guarded=[3] + [1] * 8,
    )

    cases = {c["account_id"]: (c["grade"], c["grade_seq"], str(c["opened_on"])) for c in expected["cases"]}
    assert cases == {
        "A": ("B", 10, "2026-01-01"),
        "B": ("A", 11, "2026-01-01"),
        "N": ("C", 3, "2026-03-05"),
        "P": ("D", 2, "2026-01-01"),
    }
