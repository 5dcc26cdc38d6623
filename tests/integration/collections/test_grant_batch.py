"""``credit.line.granted`` in collections: runs of every length leave the same state.

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
from sqlalchemy import Engine, text

from services.collections.grants import credit_line_granted_batch
from services.collections.registry import HANDLERS
from services.collections.models import Customer
from shared.bus.handling import BatchHandler
from shared.clock import SHANGHAI
from shared.db import transaction
from tests.support.batch_equivalence import Databases, Event, Poison, Service, bodies, databases_fixture

pytestmark = pytest.mark.integration

COLLECTIONS = Service("collections")
databases = databases_fixture("collections")
START = datetime(2026, 3, 1, 9, 0, tzinfo=SHANGHAI)


def test_registered_handler_is_the_batch_one() -> None:
    handler = HANDLERS["credit.line.granted"]
    assert isinstance(handler, BatchHandler) and handler.fn is credit_line_granted_batch


# --- scenario ---------------------------------------------------------------------------------


def _grant(account: str, name: str, phone: str, opened_on: str = "2026-03-01") -> Event:
    return "credit.line.granted", {
        "account_id": account,
        "customer_id": f"c-{account}",
        "identity_hash": "h" * 16,
        "credit_limit": "5000.00",
        "name": name,
        "phone": phone,
        "opened_on": opened_on,
    }


def _bill(account: str, statement_date: str) -> Event:
    return "bill.issued", {
        "bill_id": f"{account}-b1",
        "account_id": account,
        "statement_date": statement_date,
        "due_date": "2026-03-20",
        "amount": "1000.00",
    }


def _setup() -> list[Event]:
    return [
        _grant("K1", "张三", "13800001111", "2026-01-01"),
        _bill("K2", "2026-02-01"),
        _grant("K3", "钱七", "13800003333", "2026-01-02"),
    ]


def _night() -> list[Event]:
    return [
        _grant("N1", "李四", "13900001111"),
        _grant("N1", "李四四", "13900002222", "2026-03-02"),  # again in the run: the new contact data only
        _grant("K1", "张三丰", "13800009999", "2026-03-03"),  # stored: the new contact data, the case as it is
        _grant("K2", "王五", "13700001111"),  # a case opened by a bill before: kept as it is
        _grant("N2", "赵六", "13600001111"),
        _bill("N2", "2026-03-01"),  # a per-event handler between two runs finds the case the run opened
        _grant("N2", "赵六六", "13600002222"),  # opened by an earlier run of the same batch
        _grant("N3", "孙八", "13500001111", "2026-03-04"),
        _grant("K3", "钱七", "13800003333", "2026-01-02"),  # the same grant again: nothing changes
    ]


# --- tests ------------------------------------------------------------------------------------


def _prepared(databases: Databases, setup: list[Event]) -> Engine:
    return COLLECTIONS.prepared(databases, HANDLERS, bodies(setup, START - timedelta(days=1)))


def test_batches_give_the_same_customers_and_cases_as_one_by_one(databases: Databases) -> None:
    expected = COLLECTIONS.assert_batches_agree(
        lambda: _prepared(databases, _setup()),
        "credit.line.granted",
        bodies(_night(), START),
        one_batch=[5, 3],  # grants | a bill | grants
        poison=Poison.plan_completed(3, "K1", START),
        guarded=[3] + [1] * 8,
    )

    # what the scenario says, so that "equal" cannot mean "equally empty"
    customers = {c["account_id"]: (c["name"], c["phone"], str(c["opened_on"])) for c in expected["customers"]}
    assert customers == {
        "K1": ("张三丰", "13800009999", "2026-01-01"),
        "K2": ("王五", "13700001111", "2026-03-01"),
        "K3": ("钱七", "13800003333", "2026-01-02"),
        "N1": ("李四四", "13900002222", "2026-03-01"),
        "N2": ("赵六六", "13600002222", "2026-03-01"),
        "N3": ("孙八", "13500001111", "2026-03-04"),
    }
    cases = [(c["account_id"], str(c["opened_on"]), c["status"]) for c in expected["cases"]]
    assert cases == [
        ("K1", "2026-01-01", "open"),
        ("K2", "2026-02-01", "open"),
        ("K3", "2026-01-02", "open"),
        ("N1", "2026-03-01", "open"),
        ("N2", "2026-03-01", "open"),
        ("N3", "2026-03-04", "open"),
    ]
    assert [b["bill_id"] for b in expected["bills"]] == ["K2-b1", "N2-b1"] and expected["outbox"] == []


def test_a_run_costs_a_fixed_number_of_statements(databases: Databases) -> None:
    """Set-based: a run of 60 grants runs the statements a run of 6 does."""
    engine = _prepared(databases, [_grant("K0", "张三", "13800001111")])

    def night(n: int, prefix: str) -> list[bytes]:
        grants = [_grant(f"{prefix}-{k}", "李四", f"139{k:08d}") for k in range(n)]
        return bodies(
            grants + [_grant("K0", "张三丰", "13800009999"), _grant(f"{prefix}-0", "李四四", "13900009999")], START
        )

    small, large = (
        COLLECTIONS.statements(engine, HANDLERS, night(n, prefix)) for n, prefix in ((6, "small"), (60, "large"))
    )
    assert len(small) == len(large), large
    assert [s.split(" (")[0] for s in large if "customers" in s or "cases" in s] == [
        "INSERT INTO customers",
        "INSERT INTO cases",
    ]
    found = COLLECTIONS.state(engine)
    assert len(found["customers"]) == len(found["cases"]) == 67
    assert {c["account_id"]: c["name"] for c in found["customers"]}["large-0"] == "李四四"


def test_a_customer_already_in_the_session_sees_the_new_contact_data(databases: Databases) -> None:
    engine = _prepared(databases, [_grant("K1", "张三", "13800001111")])
    with transaction(engine) as session:
        held = session.get(Customer, "K1")
        assert held is not None and held.phone == "13800001111"
        credit_line_granted_batch(
            COLLECTIONS.handler_run(session, bodies([_grant("K1", "张三丰", "13800009999")], START))
        )
        assert (held.name, held.phone) == ("张三丰", "13800009999")


def test_a_failing_run_names_nobody(databases: Databases) -> None:
    """The applier logs a failing handler's error and keeps it with the dead letter: the
    statement's parameters (names and phones) are left out of it."""
    engine = databases()
    with pytest.raises(Exception) as failed:
        with transaction(engine) as session:
            session.execute(text("DROP TABLE customers"))  # undone with the transaction
            credit_line_granted_batch(
                COLLECTIONS.handler_run(
                    session, bodies([_grant("N1", "李四", "13900001111"), _grant("N2", "赵六", "13600001111")], START)
                )
            )
    message = str(failed.value)
    assert "INSERT INTO customers" in message and "parameters hidden" in message
    assert not any(secret in message for secret in ("李四", "赵六", "13900001111", "13600001111"))
