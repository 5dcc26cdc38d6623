"""The worked example of RULES section 2, replayed purely in the domain, to the fen."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from services.accounts.domain.allocation import (
    BillDue,
    CloseAccrual,
    allocate_repayment,
    backdated_penalty_reversal,
    bill_after_repayment,
    bill_due,
    dues_as_of,
)
from services.accounts.domain.billing import (
    DECLINE_ACCOUNT_RESTRICTED,
    UnbilledPurchase,
    available_limit,
    build_statement,
    next_statement_date,
    purchase_decision,
)
from services.accounts.domain.ledger import (
    customer_balance,
    late_fee_charged,
    penalty_accrued,
    purchase_posted,
    repayment_allocated,
)
from services.accounts.domain.lock_ladder import (
    BORROWING_SUSPENDED,
    LIMIT_CUT,
    REPORTED_TO_BUREAU,
    LadderState,
    account_status_for,
    available_frozen,
    effective_credit_limit,
    lock_ladder,
)
from services.accounts.domain.overdue import BillState
from tests.support.close_oracle import BillDayResult, bill_after_close, close_bill_for_day
from shared.rules import ProductRules

D = Decimal
RULES = ProductRules()
GRANTED = D("5000.00")


class Replay:
    """One account with one bill, closed day by day as the nightly close would."""

    def __init__(self, bill: BillState) -> None:
        self.bill = bill
        self.ladder = LadderState()
        self.results: dict[date, BillDayResult] = {}
        self.postings = [purchase_posted(bill.original_principal)]

    def close(self, day: date) -> BillDayResult:
        result = close_bill_for_day(self.bill, day, RULES.overdue)
        self.bill = bill_after_close(self.bill, result)
        self.ladder = lock_ladder(self.ladder, max_dpd=result.dpd, business_date=day, rules=RULES.lock_ladder).state
        self.postings += [penalty_accrued(result.penalty), late_fee_charged(result.late_fee)]
        self.results[day] = result
        return result

    def close_through(self, last: date) -> None:
        day = (self.bill.last_close_date or date(2026, 3, 1)) + timedelta(days=1)
        while day <= last:
            self.close(day)
            day += timedelta(days=1)

    @property
    def credit_limit(self) -> Decimal:
        return effective_credit_limit(GRANTED, self.ladder.limit_cut, RULES.lock_ladder)

    @property
    def available(self) -> Decimal:
        return available_limit(self.credit_limit, self.bill.unpaid_principal, available_frozen(self.ladder.measures))


def _bill_of_the_example() -> BillState:
    purchase = UnbilledPurchase("p-1", date(2026, 2, 14), D("1000.00"))
    decision = purchase_decision("open", GRANTED, purchase.amount)
    assert decision.approved and decision.available_after == D("4000.00")
    statement_date = next_statement_date(purchase.posted_on, RULES.billing)
    assert statement_date == date(2026, 3, 1)
    statement = build_statement(statement_date, [purchase], RULES.billing)
    assert statement is not None
    assert (statement.amount, statement.due_date) == (D("1000.00"), date(2026, 3, 10))
    return BillState("b-1", statement.due_date, statement.amount, statement.amount)


def test_worked_example_to_the_fen() -> None:
    replay = Replay(_bill_of_the_example())

    replay.close_through(date(2026, 3, 10))
    assert replay.results[date(2026, 3, 10)].dpd == 0
    assert replay.ladder.measures == ()

    first = replay.close(date(2026, 3, 11))
    assert (first.dpd, first.newly_overdue, first.penalty) == (1, True, D("0.50"))
    assert replay.ladder.measures == (BORROWING_SUSPENDED,)
    declined = purchase_decision(account_status_for(replay.ladder.measures), replay.available, D("1.00"))
    assert declined.reason == DECLINE_ACCOUNT_RESTRICTED

    replay.close_through(date(2026, 3, 13))
    end_of_grace = replay.close(date(2026, 3, 14))
    assert (end_of_grace.dpd, end_of_grace.late_fee, end_of_grace.bureau_mark) == (4, D("10.00"), True)
    assert replay.bill.penalty_outstanding == D("2.00")
    assert REPORTED_TO_BUREAU in replay.ladder.measures and LIMIT_CUT in replay.ladder.measures
    assert replay.credit_limit == D("2500.00")

    replay.close_through(date(2026, 3, 20))
    assert replay.bill.penalty_outstanding == D("5.00")

    allocation = allocate_repayment(D("500.00"), [bill_due(replay.bill)], D("0"), date(2026, 3, 20), RULES.overdue)
    assert [(line.component, line.amount) for line in allocation.lines] == [
        ("penalty_interest", D("5.00")),
        ("late_fee", D("10.00")),
        ("principal", D("485.00")),
    ]
    assert allocation.credit_balance == 0
    replay.bill = bill_after_repayment(replay.bill, allocation)
    replay.postings.append(repayment_allocated(allocation))
    assert replay.bill.unpaid_principal == D("515.00")

    assert replay.close(date(2026, 3, 21)).penalty == D("0.26")
    # billed 1,000.00 + penalty 5.26 + late fee 10.00, paid 500.00
    assert customer_balance(replay.postings) == D("515.26")


def test_worked_example_when_the_repayment_notice_arrives_three_days_late() -> None:
    """The 500.00 paid on 03-20 reaches us after the closes of 03-21..03-23 ran on 1,000.00:
    applied as of 03-20 it allocates as on time, and each later close gives back
    round(1000.00 x 0.05%) - round(515.00 x 0.05%) = 0.50 - 0.26 = 0.24."""
    replay = Replay(_bill_of_the_example())
    replay.close_through(date(2026, 3, 23))
    assert replay.bill.penalty_outstanding == D("6.50")
    closes = [
        CloseAccrual(day, D("1000.00"), r.penalty, r.late_fee, r.bureau_mark)
        for day, r in replay.results.items()
        if r.dpd >= 1
    ]

    paid_on = date(2026, 3, 20)
    as_of = dues_as_of(bill_due(replay.bill), closes, paid_on)
    assert as_of == BillDue("b-1", date(2026, 3, 10), D("5.00"), D("10.00"), D("1000.00"))
    allocation = allocate_repayment(D("500.00"), [as_of], D("0"), paid_on, RULES.overdue)
    assert allocation.paid("b-1", "principal") == D("485.00")

    reversal = backdated_penalty_reversal(closes, paid_on, D("485.00"), RULES.overdue)
    assert [r.penalty for r in reversal.per_close] == [D("0.24")] * 3
    assert reversal.late_fee_reversed == 0 and not reversal.bureau_mark_withdrawn

    penalty_left = (
        replay.bill.penalty_outstanding - allocation.paid("b-1", "penalty_interest") - reversal.penalty_reversed
    )
    assert penalty_left == D("0.78")  # three closes at 0.26, as if it had arrived on time
