"""RULES 4.6, disputes, through the accounts service's real handlers and jobs on PostgreSQL
and SQLite: the worked example of docs/rules.md, the ledger kept balanced."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.accounts.models import Account, Bill, LedgerEntry
from services.accounts.queries import account_view
from tests.support.customers import credit_line, purchase
from tests.support.service_driver import ServiceDriver

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql", "sqlite"])
def accounts(request, tmp_path):
    driver = ServiceDriver("accounts", sqlite_dir=str(tmp_path) if request.param == "sqlite" else None)
    yield driver
    driver.drop()


def close_through(driver: ServiceDriver, first: date, last: date) -> None:
    day = first
    while day <= last:
        driver.run_job("daily-close", day)
        day += timedelta(days=1)


def two_purchases(driver: ServiceDriver, account_id: str) -> str:
    """1,000.00 and 400.00 on 02-14: one bill of 1,400.00 due 03-10; returns the 400.00's id."""
    driver.send("credit.line.granted", credit_line(account_id, "5000.00"))
    driver.send("purchase.requested", purchase(account_id, "1000.00", "2026-02-14T15:00:00+08:00"))
    disputed = f"{account_id}-p400"
    driver.send("purchase.requested", purchase(account_id, "400.00", "2026-02-14T16:00:00+08:00", disputed))
    driver.run_job("statements", date(2026, 3, 1))
    return disputed


def open_dispute(driver: ServiceDriver, account_id: str, dispute_id: str, opened: str, **target: str) -> None:
    payload = {
        "dispute_id": dispute_id,
        "account_id": account_id,
        "amount": "400.00",
        "reason": "not_received",
        "opened_at": opened,
        **target,
    }
    driver.send("dispute.opened", payload, occurred_at=opened)


def resolve(driver: ServiceDriver, dispute_id: str, outcome: str, resolution_id: str = "", **extra: str) -> None:
    payload = {
        "resolution_id": resolution_id or f"res-{dispute_id}",
        "dispute_id": dispute_id,
        "outcome": outcome,
        "resolved_by": "op-9",
        **extra,
    }
    driver.send("dispute.resolved", payload, dispute_id, occurred_at="2026-03-20T15:00:00+08:00")


def bill_of(driver: ServiceDriver, account_id: str) -> Bill:
    with Session(driver.engine) as session:
        return session.scalars(
            select(Bill).join(Account, Account.pk == Bill.account_pk).where(Account.account_id == account_id)
        ).one()


def balanced(driver: ServiceDriver) -> bool:
    with Session(driver.engine) as session:
        debits, credits = session.execute(
            select(func.sum(LedgerEntry.debit_fen), func.sum(LedgerEntry.credit_fen))
        ).one()
    return debits == credits


def test_a_disputed_purchase_is_not_charged_and_upheld_is_credited_back(accounts: ServiceDriver) -> None:
    disputed = two_purchases(accounts, "acc-d")
    open_dispute(accounts, "acc-d", "dsp-1", "2026-03-05T10:00:00+08:00", purchase_id=disputed)
    accepted = accounts.emitted("dispute.accepted")[-1]["payload"]
    assert (accepted["amount"], accepted["purchase_id"], accepted["opened_on"]) == ("400.00", disputed, "2026-03-05")
    close_through(accounts, date(2026, 3, 1), date(2026, 3, 11))
    assert bill_of(accounts, "acc-d").penalty_charged_fen == 50  # on 1,000.00, not 1,400.00
    close_through(accounts, date(2026, 3, 12), date(2026, 3, 20))
    bill = bill_of(accounts, "acc-d")
    assert (bill.penalty_charged_fen, bill.late_fee_charged_fen) == (500, 1000)
    snapshot = accounts.emitted("account.delinquency.updated")[-1]["payload"]
    assert snapshot["overdue_principal"] == "1000.00"  # the disputed 400.00 is not collected
    resolve(accounts, "dsp-1", "upheld")
    closed = accounts.emitted("dispute.closed")[-1]["payload"]
    assert (closed["credited"], closed["penalty_reversed"], closed["owes_again"]) == ("400.00", "0.00", "0.00")
    bill = bill_of(accounts, "acc-d")
    assert (bill.unpaid_principal_fen, bill.unpaid_penalty_fen, bill.unpaid_late_fee_fen, bill.disputed_fen) == (
        100000,
        500,
        1000,
        0,
    )
    with Session(accounts.engine) as session:
        view = account_view(session, "acc-d")
        kinds = set(session.scalars(select(LedgerEntry.kind).distinct()))
    assert view["disputes"][0]["outcome"] == "upheld" and view["unpaid_principal"] == "1000.00"
    assert "dispute_upheld" in kinds and balanced(accounts)
    resolve(accounts, "dsp-1", "rejected")  # a retry of the same resolution id: the first answer again
    assert accounts.emitted("dispute.closed")[-1]["payload"]["outcome"] == "upheld"
    resolve(accounts, "dsp-1", "rejected", resolution_id="res-late")
    assert accounts.emitted("dispute.resolution.rejected")[-1]["payload"]["reason"] == "not_open"


def test_rejected_the_amount_owes_again_without_the_disputed_days(accounts: ServiceDriver) -> None:
    two_purchases(accounts, "acc-r")
    bill_id = bill_of(accounts, "acc-r").bill_id
    open_dispute(accounts, "acc-r", "dsp-r", "2026-03-05T10:00:00+08:00", bill_id=bill_id)
    close_through(accounts, date(2026, 3, 1), date(2026, 3, 20))
    resolve(accounts, "dsp-r", "rejected")
    closed = accounts.emitted("dispute.closed")[-1]["payload"]
    assert (closed["credited"], closed["owes_again"]) == ("0.00", "400.00")
    assert bill_of(accounts, "acc-r").penalty_charged_fen == 500  # the disputed days are not charged
    accounts.run_job("daily-close", date(2026, 3, 21))
    assert bill_of(accounts, "acc-r").penalty_charged_fen == 570  # round(1,400.00 × 0.0005)
    assert balanced(accounts)


def test_upheld_after_charges_reverses_each_closes_share(accounts: ServiceDriver) -> None:
    two_purchases(accounts, "acc-s")
    bill_id = bill_of(accounts, "acc-s").bill_id
    close_through(accounts, date(2026, 3, 1), date(2026, 3, 12))  # 0.70 twice on 1,400.00
    open_dispute(accounts, "acc-s", "dsp-s", "2026-03-12T10:00:00+08:00", bill_id=bill_id)
    resolve(accounts, "dsp-s", "partly_upheld", upheld_amount="400.00")
    assert accounts.emitted("dispute.resolution.rejected")[-1]["payload"]["reason"] == "upheld_amount_invalid"
    corrected = {"resolution_id": "res-s2", "dispute_id": "dsp-s", "outcome": "upheld", "resolved_by": "op-9"}
    accounts.send("dispute.resolved", corrected, "dsp-s", occurred_at="2026-03-12T16:00:00+08:00")
    closed = accounts.emitted("dispute.closed")[-1]["payload"]
    assert (closed["credited"], closed["penalty_reversed"], closed["late_fee_reversed"]) == ("400.00", "0.40", "0.00")
    bill = bill_of(accounts, "acc-s")
    assert (bill.unpaid_penalty_fen, bill.penalty_charged_fen, bill.unpaid_principal_fen) == (100, 100, 100000)
    assert balanced(accounts)


def test_a_partly_upheld_dispute_and_the_service_level_alert(accounts: ServiceDriver) -> None:
    two_purchases(accounts, "acc-p")
    bill_id = bill_of(accounts, "acc-p").bill_id
    open_dispute(accounts, "acc-p", "dsp-p", "2026-03-05T10:00:00+08:00", bill_id=bill_id)
    close_through(accounts, date(2026, 3, 1), date(2026, 3, 21))
    (alert,) = accounts.emitted("dispute.service_level.breached")
    assert (alert["payload"]["business_date"], alert["payload"]["days_open"]) == ("2026-03-21", 16)
    accounts.run_job("daily-close", date(2026, 3, 22))
    assert len(accounts.emitted("dispute.service_level.breached")) == 1  # once
    resolve(accounts, "dsp-p", "partly_upheld", upheld_amount="150.00")
    closed = accounts.emitted("dispute.closed")[-1]["payload"]
    assert (closed["credited"], closed["owes_again"]) == ("150.00", "250.00")
    assert bill_of(accounts, "acc-p").unpaid_principal_fen == 125000
    assert balanced(accounts)


def test_disputes_refused_with_a_reason(accounts: ServiceDriver) -> None:
    two_purchases(accounts, "acc-x")
    bill_id = bill_of(accounts, "acc-x").bill_id
    open_dispute(accounts, "acc-x", "dsp-x1", "2026-03-05T10:00:00+08:00", bill_id="nope")
    assert accounts.emitted("dispute.rejected")[-1]["payload"]["reason"] == "unknown_bill"
    payload = {
        "dispute_id": "dsp-x2",
        "account_id": "acc-x",
        "bill_id": bill_id,
        "amount": "1400.01",
        "reason": "duplicate_charge",
        "opened_at": "2026-03-05T10:00:00+08:00",
    }
    accounts.send("dispute.opened", payload)
    assert accounts.emitted("dispute.rejected")[-1]["payload"]["reason"] == "amount_above_undisputed"
    resolve(accounts, "dsp-none", "upheld")
    assert accounts.emitted("dispute.resolution.rejected")[-1]["payload"]["reason"] == "unknown_dispute"
