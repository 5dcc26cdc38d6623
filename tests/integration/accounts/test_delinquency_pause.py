"""RULES 2.8, the delinquency pause, through the accounts service's real handlers and jobs:
the worked example of docs/rules.md, on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.accounts.models import Account, Bill, BureauMark, RestrictionHistory
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


def overdue_at_dpd_2(driver: ServiceDriver, account_id: str) -> None:
    driver.send("credit.line.granted", credit_line(account_id, "5000.00"))
    driver.send("purchase.requested", purchase(account_id, "1000.00", "2026-02-14T15:00:00+08:00"))
    driver.run_job("statements", date(2026, 3, 1))
    close_through(driver, date(2026, 3, 1), date(2026, 3, 12))  # DPD 2, penalty 1.00


def pause(driver: ServiceDriver, account_id: str, request_id: str, until: str | None = None, **kw: str) -> None:
    payload = {"request_id": request_id, "account_id": account_id, "reason": "dispute", "operator_id": "op-1"}
    if until:
        payload["until"] = until
    driver.send("delinquency.pause.requested", {**payload, **kw}, occurred_at=kw.pop("at", "2026-03-12T10:00:00+08:00"))


def resume(driver: ServiceDriver, account_id: str, request_id: str, at: str) -> None:
    payload = {"request_id": request_id, "account_id": account_id, "operator_id": "op-2"}
    driver.send("delinquency.resume.requested", payload, occurred_at=at)


def bill_of(driver: ServiceDriver, account_id: str) -> Bill:
    with Session(driver.engine) as session:
        return session.scalars(
            select(Bill).join(Account, Account.pk == Bill.account_pk).where(Account.account_id == account_id)
        ).one()


def account_of(driver: ServiceDriver, account_id: str) -> Account:
    with Session(driver.engine) as session:
        return session.scalars(select(Account).where(Account.account_id == account_id)).one()


def history(driver: ServiceDriver, account_id: str) -> list[tuple[str, str, date, date | None]]:
    with Session(driver.engine) as session:
        pk = account_of(driver, account_id).pk
        rows = session.scalars(
            select(RestrictionHistory).where(RestrictionHistory.account_pk == pk).order_by(RestrictionHistory.id)
        ).all()
        return [(r.measure, r.cause, r.added_on, r.lifted_on) for r in rows]


def test_a_paused_account_accrues_nothing_and_counts_on_after_resume(accounts: ServiceDriver) -> None:
    overdue_at_dpd_2(accounts, "acc-p")
    pause(accounts, "acc-p", "pause-1")
    paused = accounts.emitted("delinquency.paused")[-1]["payload"]
    assert (paused["reason"], paused["paused_on"], paused["until"]) == ("dispute", "2026-03-12", None)
    close_through(accounts, date(2026, 3, 13), date(2026, 3, 31))
    bill = bill_of(accounts, "acc-p")
    assert (bill.dpd, bill.penalty_charged_fen, bill.late_fee_charged_fen, bill.bureau_marked_on) == (2, 100, 0, None)
    account = account_of(accounts, "acc-p")
    assert (account.level, account.limit_cut, account.max_dpd) == (1, False, 2)  # the suspension stays
    snapshots = [e["payload"]["business_date"] for e in accounts.emitted("account.delinquency.updated")]
    assert max(snapshots) == "2026-03-12"

    resume(accounts, "acc-p", "resume-1", "2026-03-31T15:00:00+08:00")
    resumed = accounts.emitted("delinquency.resumed")[-1]["payload"]
    assert (resumed["paused_on"], resumed["resumed_on"], resumed["resumed_by"]) == (
        "2026-03-12",
        "2026-03-31",
        "operator",
    )
    assert resumed["bills"] == [{"bill_id": bill.bill_id, "dpd": 2, "days_not_counted": 19}]
    accounts.run_job("daily-close", date(2026, 4, 1))
    bill = bill_of(accounts, "acc-p")
    assert (bill.dpd, bill.penalty_charged_fen, bill.late_fee_charged_fen) == (3, 150, 0)
    accounts.run_job("daily-close", date(2026, 4, 2))
    bill = bill_of(accounts, "acc-p")
    assert (bill.dpd, bill.penalty_charged_fen, bill.late_fee_charged_fen) == (4, 200, 1000)
    assert bill.due_date == date(2026, 3, 10)  # the customer's due date stays
    account = account_of(accounts, "acc-p")
    assert (account.level, account.limit_cut, account.paused_on) == (2, True, None)
    assert ("delinquency_paused", "dispute", date(2026, 3, 12), date(2026, 3, 31)) in history(accounts, "acc-p")


def test_the_close_after_until_resumes_the_account(accounts: ServiceDriver) -> None:
    overdue_at_dpd_2(accounts, "acc-u")
    pause(accounts, "acc-u", "pause-u", until="2026-03-20")
    close_through(accounts, date(2026, 3, 13), date(2026, 3, 21))
    resumed = accounts.emitted("delinquency.resumed")[-1]["payload"]
    assert (resumed["resumed_on"], resumed["resumed_by"], resumed["request_id"]) == ("2026-03-20", "until", None)
    assert resumed["bills"][0]["days_not_counted"] == 8
    bill = bill_of(accounts, "acc-u")
    assert (bill.dpd, bill.penalty_charged_fen) == (3, 150)  # the close of 03-21 counts on from DPD 2


def test_a_payment_while_paused_can_cure_but_never_climb(accounts: ServiceDriver) -> None:
    overdue_at_dpd_2(accounts, "acc-c")
    pause(accounts, "acc-c", "pause-c")
    close_through(accounts, date(2026, 3, 13), date(2026, 4, 20))
    accounts.send("repayment.received", repayment("acc-c", "10.00", "2026-04-20T10:00:00+08:00"))
    assert account_of(accounts, "acc-c").level == 1  # DPD 41 by the calendar, but it stands at 2
    accounts.send("repayment.received", repayment("acc-c", "991.00", "2026-04-20T11:00:00+08:00"))
    assert accounts.emitted("account.cured")[-1]["payload"]["account_id"] == "acc-c"
    with Session(accounts.engine) as session:
        assert session.scalars(select(BureauMark)).all() == []


def test_commands_are_answered_once_and_refused_with_a_reason(accounts: ServiceDriver) -> None:
    overdue_at_dpd_2(accounts, "acc-r")
    resume(accounts, "acc-r", "resume-early", "2026-03-12T09:00:00+08:00")
    assert accounts.emitted("delinquency.resume.rejected")[-1]["payload"]["reason"] == "not_paused"
    pause(accounts, "acc-r", "pause-r", until="2026-03-12")
    assert accounts.emitted("delinquency.pause.rejected")[-1]["payload"]["reason"] == "until_not_after_today"
    pause(accounts, "acc-r", "pause-r2")
    pause(accounts, "acc-r", "pause-r2")  # a retry: the first answer again, applied once
    assert [e["payload"]["request_id"] for e in accounts.emitted("delinquency.paused")] == ["pause-r2", "pause-r2"]
    pause(accounts, "acc-r", "pause-r3")
    assert accounts.emitted("delinquency.pause.rejected")[-1]["payload"]["reason"] == "already_paused"
    pause(accounts, "acc-nobody", "pause-x")
    assert accounts.emitted("delinquency.pause.rejected")[-1]["payload"]["reason"] == "unknown_account"
    assert [h[0] for h in history(accounts, "acc-r")].count("delinquency_paused") == 1
