"""RULES section 2's worked example, to the fen, through the accounts service's real
handlers and jobs on PostgreSQL (the same example runs through the bus in tests/e2e)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from services.accounts.models import Account, Bill
from tests.support.customers import credit_line, purchase, repayment
from tests.support.service_driver import ServiceDriver

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql", "sqlite"])
def accounts(request, tmp_path):
    """On PostgreSQL (the deployment) and on SQLite (the embedded default): same SQL, same fen."""
    driver = ServiceDriver("accounts", sqlite_dir=str(tmp_path) if request.param == "sqlite" else None)
    yield driver
    driver.drop()


def _bill(driver: ServiceDriver, account_id: str) -> Bill:
    from sqlalchemy.orm import Session

    with Session(driver.engine) as session:
        return session.scalars(
            select(Bill).join(Account, Account.pk == Bill.account_pk).where(Account.account_id == account_id)
        ).one()


def _account(driver: ServiceDriver, account_id: str) -> Account:
    from sqlalchemy.orm import Session

    with Session(driver.engine) as session:
        return session.scalars(select(Account).where(Account.account_id == account_id)).one()


def close_through(driver: ServiceDriver, first: date, last: date) -> None:
    day = first
    while day <= last:
        driver.run_job("daily-close", day)
        day += timedelta(days=1)


def test_worked_example_to_the_fen(accounts: ServiceDriver) -> None:
    acc = "acc-worked"
    accounts.send("credit.line.granted", credit_line(acc, "5000.00"))
    accounts.send("purchase.requested", purchase(acc, "1000.00", "2026-02-14T15:00:00+08:00"))
    assert accounts.emitted("purchase.approved")[0]["payload"]["available_limit"] == "4000.00"

    accounts.run_job("statements", date(2026, 3, 1))
    issued = accounts.emitted("bill.issued")[0]["payload"]
    assert (issued["amount"], issued["due_date"], issued["statement_date"]) == ("1000.00", "2026-03-10", "2026-03-01")

    close_through(accounts, date(2026, 3, 1), date(2026, 3, 10))
    assert accounts.emitted("bill.overdue") == []
    assert _bill(accounts, acc).unpaid_penalty_fen == 0

    accounts.run_job("daily-close", date(2026, 3, 11))
    overdue = accounts.emitted("bill.overdue")[0]["payload"]
    assert (overdue["dpd"], overdue["unpaid_principal"]) == (1, "1000.00")
    assert _bill(accounts, acc).unpaid_penalty_fen == 50
    changed = accounts.emitted("account.restrictions.changed")[-1]["payload"]
    assert changed["level"] == 1 and "borrowing_suspended" in changed["measures"]

    close_through(accounts, date(2026, 3, 12), date(2026, 3, 14))
    bill = _bill(accounts, acc)
    assert (bill.unpaid_penalty_fen, bill.unpaid_late_fee_fen, bill.dpd) == (200, 1000, 4)
    assert bill.bureau_marked_on == date(2026, 3, 14)
    changed = accounts.emitted("account.restrictions.changed")[-1]["payload"]
    assert changed["level"] == 2 and changed["credit_limit"] == "2500.00"
    assert "reported_to_bureau" in changed["measures"] and "limit_cut" in changed["measures"]

    close_through(accounts, date(2026, 3, 15), date(2026, 3, 20))
    assert _bill(accounts, acc).unpaid_penalty_fen == 500
    accounts.send("repayment.received", repayment(acc, "500.00", "2026-03-20T18:00:00+08:00", "pay-worked"))
    applied = accounts.emitted("repayment.applied")[0]["payload"]
    assert [(a["component"], a["amount"]) for a in applied["allocations"]] == [
        ("penalty_interest", "5.00"),
        ("late_fee", "10.00"),
        ("principal", "485.00"),
    ]
    assert applied["total_overdue"] == "515.00"

    accounts.run_job("daily-close", date(2026, 3, 21))
    bill = _bill(accounts, acc)
    assert bill.unpaid_principal_fen == 51500 and bill.unpaid_penalty_fen == 26
    delinquency = accounts.emitted("account.delinquency.updated")[-1]["payload"]
    assert delinquency["business_date"] == "2026-03-21" and delinquency["penalty_interest"] == "0.26"
    assert delinquency["total_overdue"] == "515.26"
    assert _account(accounts, acc).credit_limit_fen == 250000


def test_rerun_of_a_closed_date_changes_nothing(accounts: ServiceDriver) -> None:
    acc = "acc-rerun"
    accounts.send("credit.line.granted", credit_line(acc, "5000.00"))
    accounts.send("purchase.requested", purchase(acc, "1000.00", "2026-02-14T15:00:00+08:00"))
    accounts.run_job("statements", date(2026, 3, 1))
    close_through(accounts, date(2026, 3, 10), date(2026, 3, 12))
    accounts.mark()
    before = _bill(accounts, acc).unpaid_penalty_fen
    summary = accounts.run_job("daily-close", date(2026, 3, 12))
    assert summary["status"] == "already_closed"
    assert _bill(accounts, acc).unpaid_penalty_fen == before == 100
    assert accounts.emitted(since_mark=True) == []


def test_missed_days_are_caught_up_in_order(accounts: ServiceDriver) -> None:
    acc = "acc-catchup"
    accounts.send("credit.line.granted", credit_line(acc, "5000.00"))
    accounts.send("purchase.requested", purchase(acc, "1000.00", "2026-02-14T15:00:00+08:00"))
    accounts.run_job("statements", date(2026, 3, 1))
    accounts.run_job("daily-close", date(2026, 3, 10))
    summary = accounts.run_job("daily-close", date(2026, 3, 14))  # 11, 12, 13 were missed
    assert summary["dates_closed"] == ["2026-03-11", "2026-03-12", "2026-03-13", "2026-03-14"]
    bill = _bill(accounts, acc)
    assert (bill.unpaid_penalty_fen, bill.unpaid_late_fee_fen) == (200, 1000)
    completed = [e["payload"]["business_date"] for e in accounts.emitted("daily.close.completed")]
    assert completed == ["2026-03-10", "2026-03-11", "2026-03-12", "2026-03-13", "2026-03-14"]
