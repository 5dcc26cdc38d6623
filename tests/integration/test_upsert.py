"""``shared.db.upsert`` and ``matches_any`` on real databases (PostgreSQL's one-statement JSON
form and SQLite's executemany), on collections' tables: what is inserted, what a conflict
updates or leaves, the defaults a row leaves out."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.collections.models import CollectionCase, Customer, Repayment
from shared.db import matches_any, transaction, upsert
from tests.support.batch_equivalence import Databases, databases_fixture

pytestmark = pytest.mark.integration

databases = databases_fixture("collections")
CUSTOMERS, CASES, REPAYMENTS = Customer.__table__, CollectionCase.__table__, Repayment.__table__


def _customer(account: str, name: str, phone: str, customer: str = "c-1") -> dict[str, object]:
    return {"account_id": account, "customer_id": customer, "name": name, "phone": phone, "opened_on": date(2026, 1, 1)}


def test_a_conflict_updates_only_the_columns_named(databases: Databases) -> None:
    engine = databases()
    with transaction(engine) as session:
        upsert(
            session,
            CUSTOMERS,
            [_customer("B", "乙", "13800000002"), _customer("A", "甲", "13800000001")],
            key="account_id",
            update=("name", "phone"),
        )
    with transaction(engine) as session:
        upsert(
            session,
            CUSTOMERS,
            [_customer("A", "甲二", "13900000001", customer="c-other")],
            key="account_id",
            update=("name", "phone"),
        )
    with engine.connect() as conn:
        rows = {r.account_id: (r.customer_id, r.name, r.phone) for r in conn.execute(select(CUSTOMERS))}
    assert rows == {"A": ("c-1", "甲二", "13900000001"), "B": ("c-1", "乙", "13800000002")}


def test_without_columns_to_update_a_stored_row_stays_and_defaults_fill_the_new_ones(databases: Databases) -> None:
    engine = databases()
    case = {
        "account_id": "A",
        "status": "open",
        "opened_on": date(2026, 3, 1),
        "max_dpd": 0,
        "overdue_principal_fen": 0,
        "total_overdue_fen": 0,
        "plan_active": False,
    }
    with transaction(engine) as session:
        upsert(session, CASES, [case], key="account_id")
    with transaction(engine) as session:
        upsert(
            session, CASES, [{**case, "status": "closed"}, {**case, "account_id": "B", "max_dpd": 7}], key="account_id"
        )
    with engine.connect() as conn:
        rows = {r.account_id: r for r in conn.execute(select(CASES))}
    assert rows["A"].status == "open" and rows["B"].max_dpd == 7
    # left out of the rows: the models' defaults (False), not NULL
    assert rows["B"].promise_broken is False and rows["B"].phone_reported_wrong is False


def test_without_a_key_rows_are_inserted_and_a_repeated_one_fails(databases: Databases) -> None:
    engine = databases()
    payment = {"payment_id": "p-1", "account_id": "A", "amount_fen": 1_000, "applied_on": date(2026, 3, 2)}
    with transaction(engine) as session:
        upsert(session, REPAYMENTS, [payment, {**payment, "payment_id": "p-2"}], key=None)
        assert set(
            session.scalars(
                select(REPAYMENTS.c.payment_id).where(matches_any(session, REPAYMENTS.c.payment_id, {"p-2", "p-3"}))
            )
        ) == {"p-2"}
    with pytest.raises(IntegrityError), transaction(engine) as session:
        upsert(session, REPAYMENTS, [payment], key=None)
