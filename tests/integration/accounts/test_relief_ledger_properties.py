"""Property: the ledger of record stays balanced through any sequence of purchases,
repayments, delinquency pauses and resumes, disputes opened and resolved either way and
hardship waivers, through the real accounts handlers and jobs on PostgreSQL.

After every sequence:
- every posting balances (debits == credits) and so does the whole ledger;
- the customer's balance in the ledger equals billed − paid − waived − credited back by
  upheld disputes, to the fen;
- and equals what the bills, unbilled purchases and credit balance say is owed;
- no bill owes a negative amount.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from services.accounts.models import Account, Bill, Dispute, LedgerEntry, Purchase, Repayment
from tests.support.customers import credit_line, new_id, purchase, repayment
from tests.support.service_driver import ServiceDriver

pytestmark = pytest.mark.integration

START = date(2026, 1, 20)
DAYS = 70
RECEIVABLES = ("customer_principal", "customer_penalty", "customer_late_fee", "plan_receivable")
KINDS = ["purchase", "repayment", "pause", "resume", "dispute", "upheld", "partly_upheld", "rejected", "waive"]

operation = st.tuples(
    st.integers(min_value=0, max_value=DAYS - 1),
    st.sampled_from(KINDS),
    st.integers(min_value=1, max_value=150_000),  # fen
)


@pytest.fixture(scope="module")
def accounts():
    driver = ServiceDriver("accounts")
    yield driver
    driver.drop()


def _reset(driver: ServiceDriver) -> None:
    names = ", ".join(f'"{t}"' for t in driver.definition.metadata.tables if t != "alembic_version")
    with driver.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def _money(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _open_bill(driver: ServiceDriver) -> Bill | None:
    with Session(driver.engine) as session:
        return session.scalars(
            select(Bill).where(Bill.unpaid_principal_fen > Bill.disputed_fen).order_by(Bill.due_date)
        ).first()


def _last_open_dispute(driver: ServiceDriver) -> str | None:
    with Session(driver.engine) as session:
        return session.scalar(select(Dispute.dispute_id).where(Dispute.status == "open").order_by(Dispute.dispute_id))


def _act(driver: ServiceDriver, account: str, n: int, day: date, kind: str, fen: int) -> None:
    when = f"{day.isoformat()}T12:00:00+08:00"
    if kind == "purchase":
        driver.send("purchase.requested", purchase(account, _money(fen), when))
    elif kind == "repayment":
        driver.send("repayment.received", repayment(account, _money(fen), when))
    elif kind == "pause":
        payload = {"request_id": f"p{n}", "account_id": account, "reason": "regulator", "operator_id": "op-1"}
        driver.send("delinquency.pause.requested", payload, occurred_at=when)
    elif kind == "resume":
        payload = {"request_id": f"r{n}", "account_id": account, "operator_id": "op-1"}
        driver.send("delinquency.resume.requested", payload, occurred_at=when)
    elif kind == "dispute":
        bill = _open_bill(driver)
        if bill is not None:
            amount = min(fen, bill.unpaid_principal_fen - bill.disputed_fen)
            payload = {
                "dispute_id": f"d{n}",
                "account_id": account,
                "bill_id": bill.bill_id,
                "amount": _money(amount),
                "reason": "unauthorised",
                "opened_at": when,
            }
            driver.send("dispute.opened", payload, occurred_at=when)
    elif kind in ("upheld", "partly_upheld", "rejected"):
        dispute_id = _last_open_dispute(driver)
        if dispute_id is not None:
            payload = {"resolution_id": f"res{n}", "dispute_id": dispute_id, "outcome": kind, "resolved_by": "op-2"}
            if kind == "partly_upheld":
                payload["upheld_amount"] = "0.01"
            driver.send("dispute.resolved", payload, dispute_id, occurred_at=when)
    elif kind == "waive":
        with Session(driver.engine) as session:
            bill = session.scalars(select(Bill).where(Bill.unpaid_penalty_fen > 0)).first()
        if bill is not None:
            payload = {
                "request_id": f"w{n}",
                "account_id": account,
                "bill_id": bill.bill_id,
                "component": "penalty_interest",
                "amount": _money(min(fen, bill.unpaid_penalty_fen)),
                "reason": "hardship",
                "requested_by": "op-1",
            }
            driver.send("waiver.requested", payload, occurred_at=when)
            decision = {"decision_id": f"dc{n}", "waiver_id": f"w{n}", "decision": "approve", "decided_by": "op-2"}
            driver.send("waiver.decision.recorded", decision, f"w{n}", occurred_at=when)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=14))
def test_the_ledger_balances_through_pauses_disputes_waivers_and_repayments(accounts: ServiceDriver, ops) -> None:
    _reset(accounts)
    account = new_id("acc")
    accounts.send("credit.line.granted", credit_line(account, "3000.00"))
    accounts.send("purchase.requested", purchase(account, "800.00", f"{START.isoformat()}T10:00:00+08:00"))
    by_day: dict[int, list[tuple[int, str, int]]] = {}
    for n, (day, kind, fen) in enumerate(sorted(ops)):
        by_day.setdefault(day, []).append((n, kind, fen))
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        accounts.run_job("statements", day)
        accounts.run_job("daily-close", day)
        for n, kind, fen in by_day.get(offset, []):
            _act(accounts, account, n, day, kind, fen)
    with Session(accounts.engine) as session:
        unbalanced = session.execute(
            select(LedgerEntry.posting_id)
            .group_by(LedgerEntry.posting_id)
            .having(func.sum(LedgerEntry.debit_fen) != func.sum(LedgerEntry.credit_fen))
        ).all()
        assert unbalanced == []

        def side(name: str) -> int:
            return int(
                session.scalar(
                    select(func.coalesce(func.sum(LedgerEntry.debit_fen - LedgerEntry.credit_fen), 0)).where(
                        LedgerEntry.ledger_account == name
                    )
                )
                or 0
            )

        customer_balance = sum(side(a) for a in RECEIVABLES) + side("credit_balance")
        billed = int(session.scalar(select(func.coalesce(func.sum(Purchase.amount_fen), 0))) or 0) + int(
            session.scalar(select(func.coalesce(func.sum(Bill.penalty_charged_fen + Bill.late_fee_charged_fen), 0)))
            or 0
        )
        paid = sum(_fen(a) for a in session.scalars(select(Repayment.amount).where(Repayment.status == "applied")))
        waived = side("waiver_expense")
        credited = int(session.scalar(select(func.coalesce(func.sum(Dispute.credited_fen), 0))) or 0)
        assert side("write_off_expense") == 0
        assert customer_balance == billed - paid - waived - credited

        owed_on_bills = int(
            session.scalar(
                select(
                    func.coalesce(
                        func.sum(Bill.unpaid_principal_fen + Bill.unpaid_penalty_fen + Bill.unpaid_late_fee_fen), 0
                    )
                )
            )
            or 0
        )
        unbilled = int(
            session.scalar(select(func.coalesce(func.sum(Purchase.amount_fen), 0)).where(Purchase.bill_id.is_(None)))
            or 0
        )
        credit = int(session.scalar(select(func.coalesce(func.sum(Account.credit_balance_fen), 0))) or 0)
        assert customer_balance == owed_on_bills + unbilled - credit
        negative = session.scalar(
            select(func.count())
            .select_from(Bill)
            .where((Bill.unpaid_principal_fen < 0) | (Bill.unpaid_penalty_fen < 0) | (Bill.unpaid_late_fee_fen < 0))
        )
        assert negative == 0  # no bill owes less than nothing
        total = session.execute(select(func.sum(LedgerEntry.debit_fen), func.sum(LedgerEntry.credit_fen))).one()
        assert total[0] == total[1]


def _fen(text_amount: str) -> int:
    whole, _, cents = text_amount.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])
