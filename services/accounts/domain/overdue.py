"""Days past due and the daily close of one bill (RULES section 2).

Each rule is one small function named as the rulebook names it. The nightly close
applies them set-based in SQL (``services/accounts/daily_close.py``); the close of one
bill written with these functions is the tests' oracle (``tests/support/close_oracle.py``).

Timing convention (derived from the worked example of RULES section 2):

* The close of business date T runs at the start of T (beat at 00:30) and judges each
  bill with due date D < T and unpaid principal > 0: DPD = T - D.
* A repayment that takes effect on date P is applied *after* the close of P: the close
  of P accrued on the principal before the payment, the closes of dates > P accrue on
  the principal after it. In the worked example the repayment of 03-20 pays a penalty
  total of 5.00 that includes the close of 03-20 (closes 03-11 ... 03-20, ten times
  0.50), and the close of 03-21 accrues round(515.00 x 0.05%) = 0.26.
* So "DPD as of a payment date P" is simply ``dpd(P, D)``: the DPD of the last close
  that ran before the money arrived.

Decisions that are not spelled out by RULES.md and were decided here:

* Penalty interest accrues on every close with DPD >= 1 up to and including the close
  that charges the bill off (DPD 180); no close after the charge-off accrues.
* The late fee is charged by the close with DPD exactly ``grace + 1`` (4): closes are
  caught up in order so every bill meets that close once. A bill created already past
  it (a defaulted plan turned back into a bill) gets no late fee: the plan's fees were
  its charge.
* The bureau mark, the overdue detection and the charge-off are states ("has the bill
  passed DPD 4 / been flagged / been charged off?"), so they use ``>=`` with a flag:
  a bill created already past the threshold still gets them, exactly once.
* The overdue charge cap is 24% of the original principal *truncated* to the fen,
  because "never exceed" cannot be honoured by rounding up.
* The cap counts what was charged (penalty + late fee), gross of payments and waivers;
  a backdated reversal un-charges, so it gives room back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, Decimal

from shared.money import FEN, ZERO, round_fen
from shared.rules import OverdueRules


def dpd(business_date: date, due_date: date) -> int:
    """Days past due on ``business_date``: T - D, and 0 on or before the due date."""
    return max((business_date - due_date).days, 0)


def in_grace(days_past_due: int, rules: OverdueRules) -> bool:
    """The grace period is DPD 1 to ``grace_period_days`` (3): overdue, not yet charged."""
    return 1 <= days_past_due <= rules.grace_period_days


def daily_penalty(unpaid_principal: Decimal, rules: OverdueRules) -> Decimal:
    """One day's penalty interest: round(unpaid principal x 0.05%), half-up to the fen.

    Simple interest: the base is the principal only, never penalty or fees.
    """
    return round_fen(unpaid_principal * rules.penalty_daily_rate)


def late_fee(unpaid_principal: Decimal, rules: OverdueRules) -> Decimal:
    """The one-time late fee: 1% of the unpaid principal then, rounded, at most 30.00."""
    return min(round_fen(unpaid_principal * rules.late_fee_rate), rules.late_fee_max)


def overdue_charge_cap(original_principal: Decimal, rules: OverdueRules) -> Decimal:
    """The most penalty plus late fee one bill may ever be charged: 24% of its original
    principal, truncated to the fen so that the charges never exceed 24%."""
    return (original_principal * rules.overdue_charge_cap_rate).quantize(FEN, rounding=ROUND_DOWN)


def capped(charge: Decimal, original_principal: Decimal, charged_so_far: Decimal, rules: OverdueRules) -> Decimal:
    """The part of ``charge`` that still fits under the bill's overdue charge cap.

    Accrual stops at the cap: the charge that reaches it is cut, the next ones are 0.
    """
    room = overdue_charge_cap(original_principal, rules) - charged_so_far
    return max(ZERO, min(charge, room))


def in_arrears(unpaid_principal: Decimal, rules: OverdueRules) -> bool:
    """Arrears tolerance: unpaid principal at or below the tolerance (1.00) is still owed
    but does not make its bill overdue (no DPD, ladder, fee, report or contact)."""
    return unpaid_principal > rules.arrears_tolerance


@dataclass(frozen=True)
class BillState:
    """What the daily close needs to know about one bill before the close of a date.

    Amounts charged (``*_charged*``) are gross: they feed the cap. Amounts outstanding
    are what the customer still owes of each component (charged - paid - waived -
    reversed); the charge-off writes them off.
    """

    bill_id: str
    due_date: date
    original_principal: Decimal
    unpaid_principal: Decimal
    penalty_charged_total: Decimal = ZERO
    late_fee_charged: Decimal = ZERO
    penalty_outstanding: Decimal = ZERO
    late_fee_outstanding: Decimal = ZERO
    overdue_flagged: bool = False  # bill.overdue already emitted
    bureau_marked: bool = False  # a credit bureau mark already recorded
    charged_off: bool = False
    in_plan: bool = False  # moved into a restructuring plan: no accrual, not counted
    last_close_date: date | None = None  # the last close that judged this bill

    @property
    def overdue_charges(self) -> Decimal:
        """Penalty plus late fee charged so far: what the cap is measured against."""
        return self.penalty_charged_total + self.late_fee_charged


@dataclass(frozen=True)
class GraceWaiver:
    """A bill fully repaid inside its grace period: its accrued penalty is reversed,
    and it gets no late fee and no bureau mark (the closes after skip a paid bill)."""

    bill_id: str
    repaid_on: date
    dpd: int
    penalty_waived: Decimal


def grace_waiver_applies(due_date: date, repaid_on: date, principal_left: Decimal, rules: OverdueRules) -> bool:
    """The grace rule: principal fully repaid while the bill's DPD is 1 to 3."""
    return principal_left <= 0 and in_grace(dpd(repaid_on, due_date), rules)


def grace_waiver(bill: BillState, repaid_on: date, rules: OverdueRules) -> GraceWaiver | None:
    """The waiver owed for ``bill`` as it stands after a repayment on ``repaid_on``.

    What is reversed is the penalty still outstanding: under the grace rule's
    principal-first order no money reaches the penalty before the principal is paid,
    so that is all the penalty the bill accrued.
    """
    if bill.in_plan or not grace_waiver_applies(bill.due_date, repaid_on, bill.unpaid_principal, rules):
        return None
    return GraceWaiver(
        bill_id=bill.bill_id,
        repaid_on=repaid_on,
        dpd=dpd(repaid_on, bill.due_date),
        penalty_waived=bill.penalty_outstanding,
    )
