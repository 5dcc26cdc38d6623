"""Rule 2.7, the arrears tolerance, through the accounts service's real handlers and jobs:
the worked example of docs/rules.md, on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from services.accounts.models import Account, Bill, BureauMark, DailyAccrual
from shared.money import fen_str
from tests.support.customers import credit_line, purchase, repayment
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


def open_with_bill(driver: ServiceDriver, account_id: str) -> None:
    driver.send("credit.line.granted", credit_line(account_id, "5000.00"))
    driver.send("purchase.requested", purchase(account_id, "1000.00", "2026-02-14T15:00:00+08:00"))
    driver.run_job("statements", date(2026, 3, 1))


def bill_of(driver: ServiceDriver, account_id: str) -> Bill:
    with Session(driver.engine) as session:
        return session.scalars(
            select(Bill).join(Account, Account.pk == Bill.account_pk).where(Account.account_id == account_id)
        ).one()


def account_of(driver: ServiceDriver, account_id: str) -> Account:
    with Session(driver.engine) as session:
        return session.scalars(select(Account).where(Account.account_id == account_id)).one()


def test_a_bill_left_within_the_tolerance_is_not_overdue(accounts: ServiceDriver) -> None:
    open_with_bill(accounts, "acc-t")
    close_through(accounts, date(2026, 3, 1), date(2026, 3, 8))
    accounts.send("repayment.received", repayment("acc-t", "999.20", "2026-03-09T10:00:00+08:00"))
    close_through(accounts, date(2026, 3, 9), date(2026, 4, 20))
    bill = bill_of(accounts, "acc-t")
    assert (bill.unpaid_principal_fen, bill.dpd, bill.overdue_since, bill.penalty_charged_fen) == (80, 0, None, 0)
    assert (bill.late_fee_charged_fen, bill.bureau_marked_on) == (0, None)
    account = account_of(accounts, "acc-t")
    assert (account.level, account.status, account.limit_cut, account.unpaid_principal_fen) == (0, "open", False, 80)
    assert accounts.emitted("bill.overdue") == []
    assert accounts.emitted("account.delinquency.updated") == []
    assert accounts.emitted("account.restrictions.changed") == []
    with Session(accounts.engine) as session:
        assert session.scalar(select(func.count()).select_from(DailyAccrual)) == 0


def test_just_above_the_tolerance_the_bill_is_overdue(accounts: ServiceDriver) -> None:
    open_with_bill(accounts, "acc-u")
    close_through(accounts, date(2026, 3, 1), date(2026, 3, 8))
    accounts.send("repayment.received", repayment("acc-u", "998.99", "2026-03-09T10:00:00+08:00"))
    close_through(accounts, date(2026, 3, 9), date(2026, 3, 11))
    bill = bill_of(accounts, "acc-u")
    assert (bill.unpaid_principal_fen, bill.dpd, bill.penalty_charged_fen) == (101, 1, 0)
    assert [e["payload"]["bill_id"] for e in accounts.emitted("bill.overdue")] == [bill.bill_id]
    assert account_of(accounts, "acc-u").level == 1


def test_paid_down_into_the_tolerance_the_account_is_cured(accounts: ServiceDriver) -> None:
    open_with_bill(accounts, "acc-c")
    close_through(accounts, date(2026, 3, 1), date(2026, 3, 14))  # DPD 4: penalty 2.00, fee 10.00
    accounts.send("repayment.received", repayment("acc-c", "1011.50", "2026-03-14T10:00:00+08:00"))
    applied = accounts.emitted("repayment.applied")[-1]["payload"]
    assert [(a["component"], a["amount"]) for a in applied["allocations"]] == [
        ("penalty_interest", "2.00"),
        ("late_fee", "10.00"),
        ("principal", "999.50"),
    ]
    assert applied["total_overdue"] == "0.00"
    assert accounts.emitted("account.cured")[-1]["payload"]["account_id"] == "acc-c"
    account = account_of(accounts, "acc-c")
    assert (account.level, account.limit_cut) == (0, True)  # the cut is sticky (rule 3.6)
    marked_before = bill_of(accounts, "acc-c").bureau_marked_on
    close_through(accounts, date(2026, 3, 15), date(2026, 3, 31))
    bill = bill_of(accounts, "acc-c")
    assert (bill.unpaid_principal_fen, bill.penalty_charged_fen, bill.late_fee_charged_fen) == (50, 200, 1000)
    assert bill.bureau_marked_on == marked_before
    with Session(accounts.engine) as session:
        assert session.scalar(select(func.count()).select_from(BureauMark)) == 1
        later = session.scalar(
            select(func.count()).select_from(DailyAccrual).where(DailyAccrual.business_date > date(2026, 3, 14))
        )
    assert later == 0
    assert account_of(accounts, "acc-c").level == 0
    assert bill.within_tolerance_on == date(2026, 3, 14)


def test_the_month_after_the_principal_fell_within_the_tolerance_reports_no_overdue() -> None:
    """The bill's date within the tolerance against the month end of the report (rule 5.4's
    notice given): overdue in March, paid into the tolerance on 04-03, not overdue at April's end."""
    from services.accounts.credit_report import month_end_lines

    driver = ServiceDriver("accounts")
    try:
        open_with_bill(driver, "acc-r")
        close_through(driver, date(2026, 3, 1), date(2026, 4, 2))
        with Session(driver.engine) as session:
            session.execute(update(Bill).values(report_notice_on=date(2026, 3, 12), report_notice_channel="sms"))
            session.commit()
        owed = bill_of(driver, "acc-r")
        paid = owed.unpaid_penalty_fen + owed.unpaid_late_fee_fen + owed.unpaid_principal_fen - 50
        driver.send("repayment.received", repayment("acc-r", fen_str(paid), "2026-04-03T10:00:00+08:00"))
        tolerance = driver.rules.overdue.arrears_tolerance_fen
        with Session(driver.engine) as session:
            march = month_end_lines(session, date(2026, 3, 31), 0, 10**9, tolerance)
            april = month_end_lines(session, date(2026, 4, 30), 0, 10**9, tolerance)
        assert [(line.status, line.max_dpd) for line in march] == [("1", 21)]
        assert [(line.status, line.max_dpd) for line in april] == [("N", 0)]
    finally:
        driver.drop()
