"""Installment schedules of a restructuring plan (RULES section 8).

Two repayment methods are offered:

* ``equal_principal`` (the default, "equal principal with a flat fee"): each period's
  principal is round(P ÷ n), the last period takes the remainder, and every period
  carries the same fee round(P × monthly fee rate);
* ``equal_installment`` (annuity): a constant payment at the monthly rate, each
  period's fee (interest) is round(balance × rate), the last period clears the balance.

Due dates run monthly from the acceptance date, on the same day of the month, clamped
to the month's end. Period k is always due ``add_months(start, k)``: it is computed
from the acceptance date itself, never from the previous (possibly clamped) due date,
so a plan accepted on 31 January is due 28/29 February, then 31 March again.

A schedule may start at a period other than 1 (``first_period``): an adjusted plan
keeps its paid periods and re-schedules the rest with the same anchor date, so the
new periods keep the plan's day of month and numbering.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

from shared.money import FEN, ZERO, round_fen

Method = Literal["equal_principal", "equal_installment"]
METHODS: tuple[Method, ...] = ("equal_principal", "equal_installment")


class ScheduleError(ValueError):
    """The figures cannot make a schedule (no principal, no term, a principal too small
    for the term so that the last period's remainder would be negative...)."""


def add_months(start: date, months: int) -> date:
    """The same day of the month ``months`` later (or earlier), clamped to the month's end.

    31 January + 1 month is 28 (or 29) February; + 2 months is 31 March.
    """
    index = start.year * 12 + (start.month - 1) + months
    year, month0 = divmod(index, 12)
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(start.day, last_day))


def installment_due_date(start: date, period: int) -> date:
    """Due date of installment ``period`` (1-based) of a plan accepted on ``start``."""
    return add_months(start, period)


def installment_due_dates(start: date, term: int, first_period: int = 1) -> list[date]:
    """Due dates of ``term`` consecutive installments, from ``first_period`` on."""
    return [installment_due_date(start, first_period + i) for i in range(term)]


@dataclass(frozen=True)
class Installment:
    """One line of a disclosed schedule: what is due on ``due_date``.

    The five fields are the wire's ``ScheduleLine``; ``total`` is always
    principal + fee (computed, never passed).
    """

    period: int
    due_date: date
    principal: Decimal
    fee: Decimal
    total: Decimal = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", self.principal + self.fee)


@dataclass(frozen=True)
class Schedule:
    """A whole schedule, with the figures an offer discloses.

    ``principal`` is what the schedule repays (the sum of its periods' principal);
    ``start_date`` is the anchor the due dates are computed from (the acceptance date).
    """

    method: Method
    principal: Decimal
    monthly_fee_rate: Decimal
    start_date: date
    periods: tuple[Installment, ...]

    @property
    def term(self) -> int:
        return len(self.periods)

    @property
    def total_fee(self) -> Decimal:
        return sum((p.fee for p in self.periods), ZERO)

    @property
    def total_payable(self) -> Decimal:
        return sum((p.total for p in self.periods), ZERO)

    @property
    def monthly_payment(self) -> Decimal:
        """The regular payment: the first period's total (the last one may differ by
        the rounding remainder)."""
        return self.periods[0].total if self.periods else ZERO

    @property
    def first_period(self) -> int:
        return self.periods[0].period if self.periods else 1

    @property
    def payments(self) -> list[Decimal]:
        """Each period's total, in order: the customer's side of the cash flows."""
        return [p.total for p in self.periods]


def _check(principal: Decimal, term: int) -> None:
    if term < 1:
        raise ScheduleError(f"term must be at least 1, got {term}")
    if principal <= 0 or principal != principal.quantize(FEN):
        raise ScheduleError(f"principal must be a positive amount to the fen, got {principal}")


def equal_principal_schedule(
    principal: Decimal, term: int, monthly_fee_rate: Decimal, start: date, first_period: int = 1
) -> Schedule:
    """Equal principal with a flat fee: the default method of RULES section 8.

    The fee is flat on the restructured principal (not on the declining balance): that
    is what makes it simple to disclose, and why its annualized rate is about twice the
    nominal monthly rate × 12.
    """
    _check(principal, term)
    regular = round_fen(principal / term)
    last = principal - regular * (term - 1)
    if last < 0:
        raise ScheduleError(f"principal {principal} is too small for {term} periods")
    fee = round_fen(principal * monthly_fee_rate)
    dates = installment_due_dates(start, term, first_period)
    periods = tuple(
        Installment(first_period + i, due, last if i == term - 1 else regular, fee) for i, due in enumerate(dates)
    )
    return Schedule("equal_principal", principal, monthly_fee_rate, start, periods)


def annuity_payment(principal: Decimal, term: int, monthly_rate: Decimal) -> Decimal:
    """The constant payment that repays ``principal`` in ``term`` months at ``monthly_rate``,
    rounded half-up to the fen (the one rounding of the payment)."""
    if monthly_rate == 0:
        return round_fen(principal / term)
    growth = (1 + monthly_rate) ** term
    return round_fen(principal * monthly_rate * growth / (growth - 1))


def equal_installment_schedule(
    principal: Decimal, term: int, monthly_fee_rate: Decimal, start: date, first_period: int = 1
) -> Schedule:
    """Equal installment (annuity) at the monthly rate.

    Interest (the ``fee`` of the line) is round(balance × rate) each period; the
    principal part is the payment minus that interest; the last period clears the
    balance, so the principal always sums to P exactly.
    """
    _check(principal, term)
    payment = annuity_payment(principal, term, monthly_fee_rate)
    balance = principal
    periods: list[Installment] = []
    for i, due in enumerate(installment_due_dates(start, term, first_period)):
        fee = round_fen(balance * monthly_fee_rate)
        part = balance if i == term - 1 else min(max(payment - fee, ZERO), balance)
        periods.append(Installment(first_period + i, due, part, fee))
        balance -= part
    return Schedule("equal_installment", principal, monthly_fee_rate, start, tuple(periods))


def build_schedule(
    method: Method, principal: Decimal, term: int, monthly_fee_rate: Decimal, start: date, first_period: int = 1
) -> Schedule:
    """The schedule of the given method: one entry point for offers and adjustments."""
    if method == "equal_principal":
        return equal_principal_schedule(principal, term, monthly_fee_rate, start, first_period)
    if method == "equal_installment":
        return equal_installment_schedule(principal, term, monthly_fee_rate, start, first_period)
    raise ScheduleError(f"unknown method {method!r}")
