"""RULES 4.5, hardship waivers with maker-checker, through the accounts service's real
handlers on PostgreSQL and SQLite: the worked example of docs/rules.md, the ledger kept
balanced."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.accounts.models import Account, Bill, LedgerEntry
from services.accounts.queries import account_view
from shared.rules import ProductRules, WaiverRules
from tests.support.customers import credit_line, purchase, repayment
from tests.support.service_driver import ServiceDriver

pytestmark = pytest.mark.integration


def _driver(request, tmp_path, threshold: str) -> ServiceDriver:
    rules = ProductRules(waivers=WaiverRules(approval_threshold=Decimal(threshold)))
    return ServiceDriver("accounts", rules=rules, sqlite_dir=str(tmp_path) if request.param == "sqlite" else None)


@pytest.fixture(params=["postgresql", "sqlite"])
def accounts(request, tmp_path):
    driver = _driver(request, tmp_path, "100.00")
    yield driver
    driver.drop()


@pytest.fixture(params=["postgresql", "sqlite"])
def strict(request, tmp_path):
    """The threshold at 5.00: the worked example's 10.00 needs a second operator."""
    driver = _driver(request, tmp_path, "5.00")
    yield driver
    driver.drop()


def worked_bill(driver: ServiceDriver, account_id: str) -> str:
    """The worked example's bill after the close of 03-20: penalty 5.00, late fee 10.00."""
    driver.send("credit.line.granted", credit_line(account_id, "5000.00"))
    driver.send("purchase.requested", purchase(account_id, "1000.00", "2026-02-14T15:00:00+08:00"))
    driver.run_job("statements", date(2026, 3, 1))
    day = date(2026, 3, 1)
    while day <= date(2026, 3, 20):
        driver.run_job("daily-close", day)
        day += timedelta(days=1)
    return bill_of(driver, account_id).bill_id


def bill_of(driver: ServiceDriver, account_id: str) -> Bill:
    with Session(driver.engine) as session:
        return session.scalars(
            select(Bill).join(Account, Account.pk == Bill.account_pk).where(Account.account_id == account_id)
        ).one()


def waive(driver: ServiceDriver, account_id: str, bill_id: str, request_id: str, amount: str = "10.00", **kw: str):
    payload = {
        "request_id": request_id,
        "account_id": account_id,
        "bill_id": bill_id,
        "component": "late_fee",
        "amount": amount,
        "reason": "hardship",
        "requested_by": "op-1",
        **kw,
    }
    driver.send("waiver.requested", payload, occurred_at="2026-03-20T15:00:00+08:00")


def decide(driver: ServiceDriver, waiver_id: str, decision_id: str, by: str, decision: str = "approve") -> None:
    payload = {"decision_id": decision_id, "waiver_id": waiver_id, "decision": decision, "decided_by": by}
    driver.send("waiver.decision.recorded", payload, waiver_id, occurred_at="2026-03-21T10:00:00+08:00")


def ledger_balanced(driver: ServiceDriver) -> bool:
    with Session(driver.engine) as session:
        debits, credits = session.execute(
            select(func.sum(LedgerEntry.debit_fen), func.sum(LedgerEntry.credit_fen))
        ).one()
    return debits == credits


def test_at_the_threshold_one_operator_waives_at_once(accounts: ServiceDriver) -> None:
    bill_id = worked_bill(accounts, "acc-w")
    waive(accounts, "acc-w", bill_id, "w-1")
    applied = accounts.emitted("waiver.applied")[-1]["payload"]
    assert (applied["amount"], applied["component"], applied["approved_by"]) == ("10.00", "late_fee", None)
    bill = bill_of(accounts, "acc-w")
    assert (bill.unpaid_late_fee_fen, bill.unpaid_penalty_fen, bill.late_fee_charged_fen) == (0, 500, 1000)
    with Session(accounts.engine) as session:
        view = account_view(session, "acc-w")
        expense = session.scalar(
            select(func.sum(LedgerEntry.debit_fen)).where(
                LedgerEntry.kind == "hardship_waiver", LedgerEntry.ledger_account == "waiver_expense"
            )
        )
    assert expense == 1000
    assert [(w["status"], w["applied"]) for w in view["waivers"]] == [("applied", "10.00")]
    assert ledger_balanced(accounts)
    waive(accounts, "acc-w", bill_id, "w-1")  # a retry: the first answer again, applied once
    assert len(accounts.emitted("waiver.applied")) == 2 and bill_of(accounts, "acc-w").unpaid_late_fee_fen == 0
    waive(accounts, "acc-w", bill_id, "w-2")
    assert accounts.emitted("waiver.rejected")[-1]["payload"]["reason"] == "amount_above_outstanding"


def test_above_the_threshold_one_person_cannot_apply_it(strict: ServiceDriver) -> None:
    bill_id = worked_bill(strict, "acc-mc")
    waive(strict, "acc-mc", bill_id, "w-mc")
    pending = strict.emitted("waiver.pending")[-1]["payload"]
    assert (pending["waiver_id"], pending["amount"], pending["requested_by"]) == ("w-mc", "10.00", "op-1")
    assert strict.emitted("waiver.applied") == []
    decide(strict, "w-mc", "d-self", "op-1")
    assert strict.emitted("waiver.decision.rejected")[-1]["payload"]["reason"] == "approver_is_requester"
    assert bill_of(strict, "acc-mc").unpaid_late_fee_fen == 1000
    strict.send("repayment.received", repayment("acc-mc", "5.00", "2026-03-20T18:00:00+08:00"))  # pays the penalty
    decide(strict, "w-mc", "d-1", "op-2")
    approved = strict.emitted("waiver.approved")[-1]["payload"]
    applied = strict.emitted("waiver.applied")[-1]["payload"]
    assert (approved["approved_by"], applied["approved_by"], applied["amount"]) == ("op-2", "op-2", "10.00")
    bill = bill_of(strict, "acc-mc")
    assert (bill.unpaid_penalty_fen, bill.unpaid_late_fee_fen, bill.unpaid_principal_fen) == (0, 0, 100000)
    decide(strict, "w-mc", "d-2", "op-3")
    assert strict.emitted("waiver.decision.rejected")[-1]["payload"]["reason"] == "not_pending"
    assert ledger_balanced(strict)


def test_a_declined_waiver_waives_nothing(strict: ServiceDriver) -> None:
    bill_id = worked_bill(strict, "acc-d")
    waive(strict, "acc-d", bill_id, "w-d")
    decide(strict, "w-d", "d-d", "op-2", decision="decline")
    assert strict.emitted("waiver.declined")[-1]["payload"]["declined_by"] == "op-2"
    assert strict.emitted("waiver.applied") == []
    assert bill_of(strict, "acc-d").unpaid_late_fee_fen == 1000
