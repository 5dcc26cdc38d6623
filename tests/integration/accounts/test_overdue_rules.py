"""The overdue rules through the real accounts handlers and jobs on PostgreSQL:
grace waiver, late notices, the cap, charge-off, linked accounts, plans, credit balance."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.accounts import restrictions
from services.accounts.models import Account, Bill, BureauMark, LedgerEntry, RestrictionHistory
from shared.money import fen_str
from tests.support.customers import credit_line, purchase, repayment
from tests.support.service_driver import ServiceDriver

pytestmark = pytest.mark.integration


@pytest.fixture()
def accounts():
    driver = ServiceDriver("accounts")
    yield driver
    driver.drop()


def bill_of(driver: ServiceDriver, account_id: str, origin: str = "statement") -> Bill:
    with Session(driver.engine) as session:
        return session.scalars(
            select(Bill)
            .join(Account, Account.pk == Bill.account_pk)
            .where(Account.account_id == account_id, Bill.origin == origin)
        ).one()


def account_of(driver: ServiceDriver, account_id: str) -> Account:
    with Session(driver.engine) as session:
        return session.scalars(select(Account).where(Account.account_id == account_id)).one()


def open_with_bill(
    driver: ServiceDriver, account_id: str, amount: str = "1000.00", identity: str | None = None, limit: str = "5000.00"
) -> None:
    driver.send("credit.line.granted", credit_line(account_id, limit, identity=identity))
    driver.send("purchase.requested", purchase(account_id, amount, "2026-02-14T15:00:00+08:00"))


def close_days(driver: ServiceDriver, first: date, last: date) -> None:
    day = first
    while day <= last:
        driver.run_job("daily-close", day)
        day += timedelta(days=1)


def start(driver: ServiceDriver) -> None:
    driver.run_job("statements", date(2026, 3, 1))
    close_days(driver, date(2026, 3, 1), date(2026, 3, 10))


def test_grace_waiver_reverses_penalty_and_nothing_is_reported(accounts: ServiceDriver) -> None:
    open_with_bill(accounts, "acc-g")
    start(accounts)
    close_days(accounts, date(2026, 3, 11), date(2026, 3, 13))  # DPD 3, penalty 1.50
    accounts.send("repayment.received", repayment("acc-g", "1000.00", "2026-03-13T09:00:00+08:00"))
    applied = accounts.emitted("repayment.applied")[-1]["payload"]
    assert [(a["component"], a["amount"]) for a in applied["allocations"]] == [("principal", "1000.00")]
    assert applied["total_overdue"] == "0.00"
    close_days(accounts, date(2026, 3, 14), date(2026, 3, 20))
    bill = bill_of(accounts, "acc-g")
    assert (bill.unpaid_penalty_fen, bill.late_fee_charged_fen, bill.bureau_marked_on) == (0, 0, None)
    assert accounts.emitted("account.cured")[-1]["payload"]["account_id"] == "acc-g"
    with Session(accounts.engine) as session:
        waived = session.scalar(
            select(func.sum(LedgerEntry.debit_fen)).where(LedgerEntry.ledger_account == "waiver_expense")
        )
    assert waived == 150


def test_late_notice_is_applied_as_of_paid_at(accounts: ServiceDriver) -> None:
    """Paid on 03-12 (DPD 2, in grace) but the gateway told us after the close of 03-16."""
    open_with_bill(accounts, "acc-late")
    start(accounts)
    close_days(accounts, date(2026, 3, 11), date(2026, 3, 16))
    assert bill_of(accounts, "acc-late").unpaid_late_fee_fen == 1000
    accounts.send("repayment.received", repayment("acc-late", "1000.00", "2026-03-12T20:00:00+08:00"))
    bill = bill_of(accounts, "acc-late")
    # Grace judged on 03-12: principal first, penalty to 03-12 waived, later penalty and late fee reversed.
    assert (bill.unpaid_principal_fen, bill.unpaid_penalty_fen, bill.unpaid_late_fee_fen) == (0, 0, 0)
    assert bill.bureau_marked_on is None
    with Session(accounts.engine) as session:
        assert session.scalar(select(func.count()).select_from(BureauMark)) == 0
    applied = accounts.emitted("repayment.applied")[-1]["payload"]
    assert applied["allocations"] == [
        {"target": "bill", "target_id": bill.bill_id, "component": "principal", "amount": "1000.00"}
    ]
    assert applied["paid_on"] == "2026-03-12"


def test_partial_late_notice_reverses_only_penalty_on_repaid_principal(accounts: ServiceDriver) -> None:
    open_with_bill(accounts, "acc-late2")
    start(accounts)
    close_days(accounts, date(2026, 3, 11), date(2026, 3, 22))
    # 500.00 paid on 03-20 after that close, notified after the close of 03-22.
    accounts.send("repayment.received", repayment("acc-late2", "500.00", "2026-03-20T18:00:00+08:00"))
    bill = bill_of(accounts, "acc-late2")
    assert bill.unpaid_principal_fen == 51500
    # 03-21 and 03-22 had charged 0.50 each; re-judged on 515.00 they charge 0.26 each.
    assert bill.unpaid_penalty_fen == 52


def test_overdue_charge_cap_stops_accrual(accounts: ServiceDriver) -> None:
    rules = accounts.rules.model_copy(
        update={
            "overdue": accounts.rules.overdue.model_copy(
                update={"overdue_charge_cap_rate": __import__("decimal").Decimal("0.012")}
            )
        }
    )
    capped = ServiceDriver("accounts", rules=rules)
    try:
        open_with_bill(capped, "acc-cap")
        start(capped)
        close_days(capped, date(2026, 3, 11), date(2026, 3, 20))
        bill = bill_of(capped, "acc-cap")
        # cap 12.00: 1.50 penalty (DPD 1-3), then DPD 4 takes 0.50 + late fee 10.00 (=12.00), nothing after.
        assert bill.penalty_charged_fen + bill.late_fee_charged_fen == 1200
        assert (bill.penalty_charged_fen, bill.late_fee_charged_fen) == (200, 1000)
    finally:
        capped.drop()


def test_charge_off_at_dpd_180(accounts: ServiceDriver) -> None:
    open_with_bill(accounts, "acc-co", amount="100.00")
    start(accounts)
    accounts.run_job("daily-close", date(2026, 3, 10) + timedelta(days=180))
    bill = bill_of(accounts, "acc-co")
    assert bill.charged_off_on == date(2026, 9, 6) and bill.dpd == 180
    charged = accounts.emitted("bill.charged_off")[-1]["payload"]
    assert bill.written_off_fen == bill.unpaid_principal_fen + bill.unpaid_penalty_fen + bill.unpaid_late_fee_fen
    assert charged["amount"] == fen_str(bill.written_off_fen)
    penalty_before = bill.penalty_charged_fen
    accounts.run_job("daily-close", date(2026, 9, 7))
    assert bill_of(accounts, "acc-co").penalty_charged_fen == penalty_before  # accrual stopped
    assert account_of(accounts, "acc-co").status == "closed"


def test_linked_accounts_frozen_and_released(accounts: ServiceDriver) -> None:
    identity = "same-person-identity-hash"
    open_with_bill(accounts, "acc-main", identity=identity)
    accounts.send("credit.line.granted", credit_line("acc-sibling", "3000.00", identity=identity))
    start(accounts)
    accounts.run_job("daily-close", date(2026, 4, 10))  # DPD 31: frozen, sibling suspended
    sibling = account_of(accounts, "acc-sibling")
    assert sibling.linked_level == 3
    changed = [
        e["payload"]
        for e in accounts.emitted("account.restrictions.changed")
        if e["payload"]["account_id"] == "acc-sibling"
    ]
    assert changed[-1]["cause"] == "linked_account" and "linked_borrowing_suspended" in changed[-1]["measures"]
    assert changed[-1]["level"] == 1  # the effective level: its purchases are declined
    declined = accounts.send("purchase.requested", purchase("acc-sibling", "10.00", "2026-04-10T12:00:00+08:00"))
    assert accounts.emitted("purchase.declined")[-1]["payload"]["reason"] == "linked_account_restricted"

    accounts.send("repayment.received", repayment("acc-main", "2000.00", "2026-04-10T13:00:00+08:00"))
    assert account_of(accounts, "acc-sibling").linked_level == 0
    released = [
        e["payload"]
        for e in accounts.emitted("account.restrictions.changed")
        if e["payload"]["account_id"] == "acc-sibling"
    ][-1]
    assert released["level"] == 0 and released["measures"] == []
    assert accounts.emitted("account.cured")[-1]["payload"]["account_id"] == "acc-main"
    accounts.send("purchase.requested", purchase("acc-sibling", "10.00", "2026-04-10T14:00:00+08:00"))
    assert accounts.emitted("purchase.approved")[-1]["payload"]["account_id"] == "acc-sibling"
    with Session(accounts.engine) as session:
        lifted = session.scalars(
            select(RestrictionHistory.lifted_on).where(RestrictionHistory.measure == "linked_borrowing_suspended")
        ).all()
    assert lifted == [date(2026, 4, 10)]
    assert declined


def test_the_close_relinks_every_identity_a_chunk_at_a_time(
    accounts: ServiceDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restrictions, "RELINK_CHUNK", 1)
    for person in ("first-person", "second-person", "third-person"):
        open_with_bill(accounts, f"acc-{person}", identity=person)
        accounts.send("credit.line.granted", credit_line(f"acc-{person}-sibling", "3000.00", identity=person))
    start(accounts)
    accounts.run_job("daily-close", date(2026, 4, 10))  # DPD 31: each main account frozen
    for person in ("first-person", "second-person", "third-person"):
        assert account_of(accounts, f"acc-{person}-sibling").linked_level == 3
        assert account_of(accounts, f"acc-{person}").linked_level == 0


def test_limit_cut_stays_until_90_clean_days(accounts: ServiceDriver) -> None:
    open_with_bill(accounts, "acc-cut")
    start(accounts)
    close_days(accounts, date(2026, 3, 11), date(2026, 3, 14))
    accounts.send("repayment.received", repayment("acc-cut", "1020.00", "2026-03-14T10:00:00+08:00"))
    assert account_of(accounts, "acc-cut").credit_limit_fen == 250000
    accounts.run_job("daily-close", date(2026, 6, 11))  # 89 days after the last overdue close
    assert account_of(accounts, "acc-cut").credit_limit_fen == 250000
    accounts.run_job("daily-close", date(2026, 6, 12))
    assert account_of(accounts, "acc-cut").credit_limit_fen == 500000
    assert accounts.emitted("account.restrictions.changed")[-1]["payload"]["cause"] == "limit_restored"


def test_plan_moves_bills_and_default_brings_them_back(accounts: ServiceDriver) -> None:
    open_with_bill(accounts, "acc-plan")
    start(accounts)
    close_days(accounts, date(2026, 3, 11), date(2026, 3, 20))
    bill = bill_of(accounts, "acc-plan")
    schedule = [
        {"period": i, "due_date": f"2026-{3 + i:02d}-20", "principal": "169.17", "fee": "7.21", "total": "176.38"}
        for i in range(1, 7)
    ]
    accounts.send(
        "plan.activated",
        {
            "plan_id": "plan-1",
            "offer_id": "off-1",
            "account_id": "acc-plan",
            "principal": "1015.00",
            "term": 6,
            "bill_ids": [bill.bill_id],
            "schedule": schedule,
        },
        occurred_at="2026-03-20T12:00:00+08:00",
    )
    moved = bill_of(accounts, "acc-plan")
    assert moved.plan_id == "plan-1" and moved.unpaid_principal_fen == 0
    changed = accounts.emitted("account.restrictions.changed")[-1]["payload"]
    assert changed["cause"] == "plan" and changed["measures"] == ["borrowing_suspended", "limit_cut"]
    accounts.run_job("daily-close", date(2026, 3, 21))
    assert accounts.emitted("account.delinquency.updated")[-1]["payload"]["business_date"] != "2026-03-21"
    accounts.send("repayment.received", repayment("acc-plan", "176.38", "2026-04-19T10:00:00+08:00"))
    alloc = accounts.emitted("repayment.applied")[-1]["payload"]["allocations"]
    assert alloc == [{"target": "plan", "target_id": "plan-1", "component": "plan", "amount": "176.38"}]
    accounts.send(
        "plan.defaulted",
        {
            "plan_id": "plan-1",
            "account_id": "acc-plan",
            "business_date": "2026-06-21",
            "outstanding_principal": "845.83",
            "fees_due": "7.21",
            "first_missed_due_date": "2026-05-20",
        },
    )
    back = bill_of(accounts, "acc-plan", origin="plan_default")
    assert back.principal_fen == 85304 and back.due_date == date(2026, 5, 20)
    assert accounts.emitted("bill.issued")[-1]["payload"]["amount"] == "853.04"
    assert account_of(accounts, "acc-plan").level == 3  # DPD 32 on the first missed date: frozen again


def test_overpayment_becomes_credit_balance_that_pays_the_next_bill(accounts: ServiceDriver) -> None:
    open_with_bill(accounts, "acc-cb", amount="100.00")
    accounts.run_job("statements", date(2026, 3, 1))
    accounts.send("repayment.received", repayment("acc-cb", "150.00", "2026-03-05T10:00:00+08:00"))
    assert accounts.emitted("repayment.applied")[-1]["payload"]["credit_balance"] == "50.00"
    accounts.send("purchase.requested", purchase("acc-cb", "80.00", "2026-03-15T10:00:00+08:00"))
    accounts.run_job("statements", date(2026, 4, 1))
    april = [b for b in accounts.emitted("bill.issued") if b["payload"]["statement_date"] == "2026-04-01"]
    assert april[0]["payload"]["amount"] == "80.00"
    applied = accounts.emitted("repayment.applied")[-1]["payload"]
    assert applied["amount"] == "50.00" and applied["credit_balance"] == "0.00"
    assert account_of(accounts, "acc-cb").credit_balance_fen == 0


def test_rejected_repayments_change_nothing(accounts: ServiceDriver) -> None:
    open_with_bill(accounts, "acc-rej")
    for amount, currency, reason in (
        ("0.00", "CNY", "non_positive_amount"),
        ("-1.00", "CNY", "non_positive_amount"),
        ("1.001", "CNY", "too_many_decimals"),
        ("10.00", "USD", "unsupported_currency"),
    ):
        accounts.send(
            "repayment.received", repayment("acc-rej", amount, "2026-03-05T10:00:00+08:00", currency=currency)
        )
        assert accounts.emitted("repayment.rejected")[-1]["payload"]["reason"] == reason
    accounts.send("repayment.received", repayment("nobody", "1.00", "2026-03-05T10:00:00+08:00"))
    assert accounts.emitted("repayment.rejected")[-1]["payload"]["reason"] == "unknown_account"
    assert accounts.emitted("repayment.applied") == []
    # The same payment id twice is applied once; the retry gets the first answer again.
    pay = repayment("acc-rej", "1.00", "2026-03-05T10:00:00+08:00", payment_id="pay-once")
    before = account_of(accounts, "acc-rej").credit_balance_fen  # no bill yet: it is credit
    accounts.send("repayment.received", pay)
    accounts.send("repayment.received", pay)
    applied = accounts.emitted("repayment.applied")
    assert len(applied) == 2 and applied[0]["payload"] == applied[1]["payload"]
    assert account_of(accounts, "acc-rej").credit_balance_fen == before + 100  # applied once
