"""Properties: allocation conserves money, postings balance, charges stay under the cap."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.accounts.domain.allocation import (
    BillDue,
    CloseAccrual,
    allocate_repayment,
    backdated_penalty_reversal,
)
from services.accounts.domain.ledger import (
    backdated_reversal_posted,
    charged_off,
    grace_waiver_posted,
    late_fee_charged,
    moved_into_plan,
    penalty_accrued,
    purchase_posted,
    repayment_allocated,
)
from services.accounts.domain.overdue import (
    BillState,
    overdue_charge_cap,
)
from tests.support.close_oracle import bill_after_close, close_bill_for_day
from shared.rules import OverdueRules

RULES = OverdueRules()
AS_OF = date(2026, 6, 15)


def fen(max_fen: int, min_fen: int = 0) -> st.SearchStrategy[Decimal]:
    return st.integers(min_fen, max_fen).map(lambda n: Decimal(n) / 100)


bill_dues = st.builds(
    BillDue,
    bill_id=st.uuids().map(str),
    due_date=st.integers(-60, 60).map(lambda d: AS_OF - timedelta(days=d)),
    penalty_interest=fen(50_000),
    late_fee=fen(3_000),
    principal=fen(2_000_000),
)


@settings(max_examples=300)
@given(amount=fen(5_000_000, 1), bills=st.lists(bill_dues, max_size=6), plan=fen(500_000))
def test_allocation_conserves_the_amount_and_never_overpays(
    amount: Decimal, bills: list[BillDue], plan: Decimal
) -> None:
    allocation = allocate_repayment(amount, bills, plan, AS_OF, RULES)
    assert allocation.allocated + allocation.credit_balance == amount
    assert all(line.amount > 0 for line in allocation.lines) and allocation.credit_balance >= 0
    for bill in bills:
        waived = sum((w.penalty_waived for w in allocation.waivers if w.bill_id == bill.bill_id), Decimal(0))
        for component in ("penalty_interest", "late_fee", "principal"):
            paid = allocation.paid(bill.bill_id, component)
            extra = waived if component == "penalty_interest" else 0
            assert paid + extra <= bill.owed(component)
    assert allocation.paid("plan", "plan") <= plan
    owed = sum((b.total for b in bills), Decimal(0)) + plan
    if allocation.credit_balance > 0:  # a credit balance only once everything is paid
        assert allocation.allocated + sum((w.penalty_waived for w in allocation.waivers), Decimal(0)) == owed
    posting = repayment_allocated(allocation, charged_off_bill_ids={b.bill_id for b in bills[:1]})
    assert posting.total_debit == posting.total_credit == amount


@given(a=fen(10**8), b=fen(10**6), c=fen(10**5))
def test_every_posting_builder_balances(a: Decimal, b: Decimal, c: Decimal) -> None:
    for posting in (
        purchase_posted(a),
        penalty_accrued(b),
        late_fee_charged(c),
        grace_waiver_posted(b),
        charged_off(a, b, c),
        moved_into_plan(a, b, c),
    ):
        assert posting.total_debit == posting.total_credit


@settings(max_examples=200)
@given(
    principal=fen(10_000_000, 1),
    rate=st.sampled_from([Decimal("0.0005"), Decimal("0.003"), Decimal("0.01"), Decimal("0.05")]),
    days=st.integers(1, 400),
    payments=st.lists(st.tuples(st.integers(1, 400), fen(1_000_000, 1)), max_size=5),
)
def test_overdue_charges_never_exceed_the_cap(
    principal: Decimal, rate: Decimal, days: int, payments: list[tuple[int, Decimal]]
) -> None:
    rules = OverdueRules(penalty_daily_rate=rate)
    due = date(2026, 3, 10)
    state = BillState("b", due, principal, principal)
    cut = dict(payments)
    for day in range(1, days + 1):
        result = close_bill_for_day(state, due + timedelta(days=day), rules)
        state = bill_after_close(state, result)
        if day in cut:
            state = replace(state, unpaid_principal=max(Decimal(0), state.unpaid_principal - cut[day]))
        assert state.overdue_charges <= overdue_charge_cap(principal, rules)


@given(
    unpaid=fen(10_000_000, 1),
    repaid=fen(10_000_000, 1),
    days=st.integers(1, 30),
    paid_after=st.integers(0, 30),
)
def test_backdated_reversal_is_bounded_by_what_was_posted(
    unpaid: Decimal, repaid: Decimal, days: int, paid_after: int
) -> None:
    due = date(2026, 3, 10)
    closes = [
        CloseAccrual(due + timedelta(days=d), unpaid, (unpaid * RULES.penalty_daily_rate).quantize(Decimal("0.01")))
        for d in range(1, days + 1)
    ]
    reversal = backdated_penalty_reversal(closes, due + timedelta(days=paid_after), repaid, RULES)
    for r in reversal.per_close:
        posted = next(c.penalty for c in closes if c.close_date == r.close_date)
        assert 0 <= r.penalty <= posted
    assert backdated_reversal_posted(reversal).total_debit == reversal.penalty_reversed
