"""The annualized rate disclosed with every offer and adjustment (RULES section 8).

The rate is the monthly internal rate of return of the customer's cash flows (+P
received at t0, −each period's total paid monthly after) × 12, shown to 0.01 %, i.e.
a Decimal fraction to four decimals (0.1224 is 12.24 %). The flat fee of the default
method looks like 0.60 % a month but costs about twice that on the declining balance:
disclosing the IRR is what makes offers comparable, and the cap (24 %) applies to it.

The IRR is the one place where floats are allowed: numpy_financial.irr works on
floats. The result is converted back to Decimal through its shortest decimal
representation and rounded half-up once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

import numpy_financial as npf

from services.restructuring.domain.schedule import Schedule

APR_QUANTUM = Decimal("0.0001")
MONTHS_PER_YEAR = 12


class AprError(ValueError):
    """The cash flows have no rate of return (no payment at all, for instance)."""


def monthly_irr(principal: Decimal, payments: Sequence[Decimal]) -> Decimal:
    """Monthly IRR of +principal at t0 and −payments[k] at month k+1, as an unrounded Decimal."""
    if principal <= 0 or not payments:
        raise AprError("an IRR needs a positive principal and at least one payment")
    flows = [float(principal)] + [-float(p) for p in payments]
    rate = float(npf.irr(flows))
    if not math.isfinite(rate):
        raise AprError(f"no rate of return for principal {principal} and payments {list(payments)}")
    return Decimal(repr(rate))


def annualized_rate(principal: Decimal, payments: Sequence[Decimal]) -> Decimal:
    """Monthly IRR × 12, rounded half-up to four decimals (0.01 %)."""
    apr = (monthly_irr(principal, payments) * MONTHS_PER_YEAR).quantize(APR_QUANTUM, rounding=ROUND_HALF_UP)
    return apr if apr != 0 else Decimal("0.0000")  # never disclose "-0.0000" for a fee-free plan


def schedule_apr(schedule: Schedule) -> Decimal:
    """The annualized rate of a schedule: its principal against its periods' totals."""
    return annualized_rate(schedule.principal, schedule.payments)
