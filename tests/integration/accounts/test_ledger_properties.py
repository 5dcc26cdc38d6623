"""Property tests of the ledger of record: random purchases, statements, daily closes and
repayments through the real accounts handlers and jobs on PostgreSQL.

After every sequence:
- every posting balances (debits == credits) and so does the whole ledger;
- the customer's balance in the ledger equals billed − paid − waived (nothing is
  written off inside the window), to the fen;
- and equals what the bills, unbilled purchases and credit balance say is owed.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from services.accounts.models import Account, Bill, LedgerEntry, Purchase, Repayment
from tests.support.customers import credit_line, new_id, purchase, repayment
from tests.support.service_driver import ServiceDriver

pytestmark = pytest.mark.integration

START = date(2026, 1, 20)
DAYS = 75
RECEIVABLES = ("customer_principal", "customer_penalty", "customer_late_fee", "plan_receivable")

operation = st.tuples(
    st.integers(min_value=0, max_value=DAYS - 1),
    st.sampled_from(["purchase", "repayment"]),
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


def _run(driver: ServiceDriver, account: str, ops: list[tuple[int, str, int]]) -> None:
    by_day: dict[int, list[tuple[str, int]]] = {}
    for day, kind, fen in ops:
        by_day.setdefault(day, []).append((kind, fen))
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        driver.run_job("statements", day)
        driver.run_job("daily-close", day)
        for kind, fen in by_day.get(offset, []):
            amount = f"{fen // 100}.{fen % 100:02d}"
            when = f"{day.isoformat()}T12:00:00+08:00"
            if kind == "purchase":
                driver.send("purchase.requested", purchase(account, amount, when))
            else:
                driver.send("repayment.received", repayment(account, amount, when))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=12), late_notice=st.booleans())
# Found by this test: a late notice dated before a payment already applied reverses
# charges that payment had paid; the excess must go back to the customer as credit
# balance, not leave a negative receivable.
@example(ops=[(0, "purchase", 1668)] + [(0, "purchase", 1)] * 4 + [(68, "repayment", 225)], late_notice=True)
def test_ledger_balances_and_matches_billed_paid_waived(accounts: ServiceDriver, ops, late_notice: bool) -> None:
    _reset(accounts)
    account = new_id("acc")
    accounts.send("credit.line.granted", credit_line(account, "3000.00"))
    _run(accounts, account, sorted(ops))
    if late_notice:  # a gateway's late notice, dated two weeks back
        accounts.send(
            "repayment.received",
            repayment(account, "123.45", f"{(START + timedelta(days=DAYS - 14)).isoformat()}T09:00:00+08:00"),
        )
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
        written_off = side("write_off_expense")
        assert written_off == 0
        assert customer_balance == billed - paid - waived

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
        total = session.execute(select(func.sum(LedgerEntry.debit_fen), func.sum(LedgerEntry.credit_fen))).one()
        assert total[0] == total[1]


def _fen(text_amount: str) -> int:
    whole, _, cents = text_amount.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])
