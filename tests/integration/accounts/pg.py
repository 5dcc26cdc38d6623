"""A fresh, migrated accounts database on the real PostgreSQL, and row builders.

Kept out of ``conftest.py`` on purpose: the service's own tests may bring theirs; a
test module imports ``accounts_db`` from here to get a database of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, create_engine, text

from baitiao import registry
from services.accounts.models import Account, Bill, BureauMark, PlanProjection, Purchase, RestrictionHistory
from shared.db import dispose_engines, make_engine
from shared.migrations import upgrade

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


@dataclass
class AccountsDb:
    url: str
    engine: Engine


@pytest.fixture(scope="module")
def accounts_db() -> Iterator[AccountsDb]:
    """bt_acc_<random>, migrated to head, dropped (forcibly) after the module."""
    name = f"bt_acc_{uuid.uuid4().hex[:12]}"
    url = f"{PG}/{name}"
    try:
        upgrade(registry.definition("accounts"), url)
        engine = make_engine(url)
        try:
            yield AccountsDb(url, engine)
        finally:
            engine.dispose()
    finally:
        dispose_engines()
        admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def d(text_date: str) -> date:
    return date.fromisoformat(text_date)


def account(
    account_id: str, *, opened_on: str = "2025-01-01", limit_fen: int = 500_000, status: str = "open", **columns: object
) -> Account:
    values: dict[str, object] = {
        "account_id": account_id,
        "customer_id": f"c-{account_id}",
        "identity_hash": f"h-{account_id}",
        "opened_on": d(opened_on),
        "granted_limit_fen": limit_fen,
        "credit_limit_fen": limit_fen,
        "limit_cut": False,
        "unpaid_principal_fen": 0,
        "credit_balance_fen": 0,
        "status": status,
        "level": 0,
        "linked_level": 0,
        "max_dpd": 0,
    }
    values.update(columns)
    return Account(**values)


def bill(
    owner: Account,
    bill_id: str,
    *,
    statement: str,
    due: str,
    principal_fen: int = 100_000,
    unpaid_fen: int | None = None,
    settled_on: str | None = None,
    charged_off_on: str | None = None,
    plan_id: str | None = None,
    **columns: object,
) -> Bill:
    """A bill of ``owner`` (flushed, so it has a pk). Unpaid defaults to all of it, or 0
    when settled; its pre-report notice was given the day after its due date (DPD 1)
    unless ``report_notice_on`` says otherwise (None: never)."""
    unpaid = unpaid_fen if unpaid_fen is not None else (0 if settled_on else principal_fen)
    values: dict[str, object] = {
        "bill_id": bill_id,
        "account_pk": owner.pk,
        "statement_date": d(statement),
        "due_date": d(due),
        "due_ordinal": d(due).toordinal(),
        "principal_fen": principal_fen,
        "charge_cap_fen": principal_fen * 24 // 100,
        "unpaid_principal_fen": unpaid,
        "unpaid_penalty_fen": 0,
        "unpaid_late_fee_fen": 0,
        "penalty_charged_fen": 0,
        "late_fee_charged_fen": 0,
        "dpd": 0,
        "settled_on": d(settled_on) if settled_on else None,
        "charged_off_on": d(charged_off_on) if charged_off_on else None,
        "written_off_fen": 0,
        "plan_id": plan_id,
        "origin": "statement",
        "report_notice_on": d(due) + timedelta(days=1),
        "report_notice_channel": "sms",
    }
    values.update(columns)
    return Bill(**values)


def plan(
    owner: Account,
    plan_id: str,
    *,
    activated_on: str,
    status: str = "active",
    ended_on: str | None = None,
    principal_fen: int = 100_000,
) -> PlanProjection:
    return PlanProjection(
        plan_id=plan_id,
        account_pk=owner.pk,
        status=status,
        principal_fen=principal_fen,
        outstanding_fen=principal_fen if status == "active" else 0,
        total_fee_fen=0,
        paid_fen=0,
        activated_on=d(activated_on),
        ended_on=d(ended_on) if ended_on else None,
    )


def restriction(
    owner: Account, measure: str, *, added_on: str, lifted_on: str | None = None, cause: str = "own_overdue"
) -> RestrictionHistory:
    return RestrictionHistory(
        account_pk=owner.pk,
        measure=measure,
        cause=cause,
        added_on=d(added_on),
        lifted_on=d(lifted_on) if lifted_on else None,
    )


def purchase(
    owner: Account, purchase_id: str, *, posted_on: str, amount_fen: int = 10_000, bill_id: str | None = None
) -> Purchase:
    from shared.clock import at_local

    return Purchase(
        purchase_id=purchase_id,
        account_pk=owner.pk,
        amount_fen=amount_fen,
        merchant="m",
        requested_at=at_local(d(posted_on), "12:00"),
        posted_on=d(posted_on),
        bill_id=bill_id,
    )


def mark(owner: Account, bill_pk: int, *, marked_on: str, settled_on: str | None) -> BureauMark:
    return BureauMark(
        account_pk=owner.pk, bill_pk=bill_pk, marked_on=d(marked_on), settled_on=d(settled_on) if settled_on else None
    )
