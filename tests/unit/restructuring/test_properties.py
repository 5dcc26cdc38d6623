"""Property tests: the arithmetic of schedules, offers, default and settlement never
creates or loses a fen."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.restructuring.domain.offers import build_offers
from services.restructuring.domain.plan import (
    AdjustmentAccepted,
    apply_payment,
    default_settlement,
    early_settlement_quote,
    extend,
    lower_payment,
    overdue_installments,
    positions,
    total_paid,
)
from services.restructuring.domain.schedule import (
    Schedule,
    add_months,
    build_schedule,
    equal_installment_schedule,
    equal_principal_schedule,
    installment_due_dates,
)
from shared.money import round_fen
from shared.rules import RestructuringRules, Grade

# Set per test, not as a global profile: other modules' property tests keep their own settings.
PROPERTY = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

RULES = RestructuringRules()

money = st.integers(min_value=10_000, max_value=50_000_000).map(lambda fen: Decimal(fen).scaleb(-2))
rates = st.integers(min_value=0, max_value=200).map(lambda bp: Decimal(bp).scaleb(-4))  # 0 … 2 % a month
terms = st.integers(min_value=1, max_value=24)
dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))
methods = st.sampled_from(["equal_principal", "equal_installment"])
small_money = st.integers(min_value=100, max_value=2_000_000).map(lambda fen: Decimal(fen).scaleb(-2))
grades = st.sampled_from(["A", "B", "C", "D", "E"])


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    return build_schedule(draw(methods), draw(money), draw(terms), draw(rates), draw(dates))


@PROPERTY
@given(money, terms, rates, dates)
def test_equal_principal_sums_to_p_and_fee_matches_the_rate(p: Decimal, n: int, rate: Decimal, start: date) -> None:
    schedule = equal_principal_schedule(p, n, rate, start)
    assert sum(i.principal for i in schedule.periods) == p
    assert all(i.fee == round_fen(p * rate) for i in schedule.periods)
    assert all(i.principal == round_fen(p / n) for i in schedule.periods[:-1])
    assert schedule.total_fee == round_fen(p * rate) * n
    assert schedule.periods[-1].principal >= 0


@PROPERTY
@given(money, terms, rates, dates)
def test_equal_installment_sums_to_p_and_fee_is_interest_on_the_balance(
    p: Decimal, n: int, rate: Decimal, start: date
) -> None:
    schedule = equal_installment_schedule(p, n, rate, start)
    assert sum(i.principal for i in schedule.periods) == p
    balance = p
    for i in schedule.periods:
        assert i.fee == round_fen(balance * rate)
        assert i.principal >= 0
        balance -= i.principal
    assert balance == 0
    assert all(i.total == schedule.monthly_payment for i in schedule.periods[:-1])


@PROPERTY
@given(dates, st.integers(min_value=-36, max_value=36))
def test_due_dates_clamp_to_the_month_end(start: date, k: int) -> None:
    due = add_months(start, k)
    assert (due.year * 12 + due.month) - (start.year * 12 + start.month) == k
    assert due.day == min(start.day, calendar.monthrange(due.year, due.month)[1])


@PROPERTY
@given(st.integers(min_value=2000, max_value=2100), terms)
def test_31_january_falls_due_at_the_end_of_february(year: int, n: int) -> None:
    dues = installment_due_dates(date(year, 1, 31), n)
    assert dues[0] == date(year, 2, 29 if calendar.isleap(year) else 28)
    assert all(d.day == calendar.monthrange(d.year, d.month)[1] for d in dues)
    assert dues == sorted(set(dues))


@PROPERTY
@given(money, grades, st.none() | money, dates, st.integers(min_value=500, max_value=3000))
def test_every_offer_is_within_the_cap_and_affordable(
    p: Decimal, grade: Grade, income: Decimal | None, start: date, cap_bp: int
) -> None:
    rules = RULES.model_copy(
        update={"apr_cap": Decimal(cap_bp).scaleb(-4), "methods": ["equal_principal", "equal_installment"]}
    )
    for offer in build_offers(p, grade, income, start, rules):
        assert offer.apr <= rules.apr_cap
        assert income is None or offer.monthly_payment <= income * rules.affordability_ratio
        assert sum(i.principal for i in offer.schedule.periods) == p
        assert offer.total_fee == offer.schedule.total_fee


@st.composite
def plan_states(draw: st.DrawFn) -> tuple[Schedule, dict, date]:
    """A schedule, what a few payments made of it, and a business date in its life."""
    schedule = draw(schedules())
    paid: dict = {}
    start = schedule.start_date
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        quote = early_settlement_quote(schedule, paid, start)
        if quote.amount <= Decimal("0.01"):
            break
        fen = draw(st.integers(min_value=1, max_value=int(quote.amount * 100) - 1))
        paid = apply_payment(schedule, paid, Decimal(fen).scaleb(-2), start).paid
    last_due = schedule.periods[-1].due_date
    business_date = start + timedelta(days=draw(st.integers(min_value=0, max_value=(last_due - start).days + 60)))
    return schedule, paid, business_date


@PROPERTY
@given(plan_states())
def test_default_settlement_conserves_money(state: tuple[Schedule, dict, date]) -> None:
    schedule, paid, business_date = state
    if not overdue_installments(schedule, paid, business_date):
        return
    s = default_settlement(schedule, paid, business_date)
    assert s.outstanding_principal + s.fees_due + s.fees_cancelled + total_paid(paid) == schedule.total_payable
    assert s.outstanding_principal == schedule.principal - sum(p.principal for p in paid.values())
    assert s.first_missed_due_date < business_date


@PROPERTY
@given(plan_states(), money)
def test_payments_and_settlement_conserve_money(state: tuple[Schedule, dict, date], amount: Decimal) -> None:
    schedule, paid, business_date = state
    quote = early_settlement_quote(schedule, paid, business_date)
    assert quote.amount + quote.fees_waived + total_paid(paid) == schedule.total_payable
    application = apply_payment(schedule, paid, amount, business_date)
    assert sum(a.total for a in application.allocations) + application.unapplied == amount
    assert total_paid(application.paid) == total_paid(paid) + amount - application.unapplied
    assert application.completed == (amount >= quote.amount)
    for row in positions(schedule, application.paid):
        assert 0 <= row.paid.fee <= row.installment.fee
        assert 0 <= row.paid.principal <= row.installment.principal


@PROPERTY
@given(plan_states(), st.integers(min_value=1, max_value=24), small_money)
def test_adjustments_conserve_principal_and_payments(
    state: tuple[Schedule, dict, date], term: int, target: Decimal
) -> None:
    schedule, paid, business_date = state
    lowered = lower_payment(schedule, paid, business_date, 0, target, RULES)
    if isinstance(lowered, AdjustmentAccepted):
        new = lowered.rescheduled
        assert lowered.monthly_payment <= target
        if new.term > 1:
            shorter = build_schedule(
                new.method, new.principal, new.term - 1, new.monthly_fee_rate, new.start_date, new.first_period
            )
            assert shorter.monthly_payment > target
    extended = extend(schedule, paid, business_date, 0, term, RULES)
    if isinstance(extended, AdjustmentAccepted):
        assert extended.new_term == term
        assert extended.rescheduled.term > sum(1 for p in positions(schedule, paid) if not p.fully_paid)
    for decision in (extended, lowered):
        if not isinstance(decision, AdjustmentAccepted):
            continue
        assert sum(i.principal for i in decision.schedule.periods) == schedule.principal
        assert total_paid(decision.paid) + decision.unapplied == total_paid(paid)
        assert decision.new_term <= RULES.max_term
        periods = [i.period for i in decision.schedule.periods]
        assert periods == list(range(1, len(periods) + 1))
        assert decision.schedule.periods[-1].due_date == add_months(schedule.start_date, len(periods))
