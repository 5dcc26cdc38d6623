"""The close of one bill for one date, written with the pure rules: the tests' oracle.

Production closes bills set-based in SQL (``services/accounts/daily_close.py``); the
rulebook's worked examples and the hypothesis properties run this per-bill close built
from the same pure rules (``services/accounts/domain/overdue.py``: ``dpd``,
``daily_penalty``, ``late_fee``, ``capped``) in the rulebook's order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from services.accounts.domain.overdue import BillState, capped, daily_penalty, dpd, in_arrears, late_fee
from shared.money import ZERO
from shared.rules import OverdueRules


@dataclass(frozen=True)
class BillDayResult:
    """What the close of ``business_date`` does for one bill, once.

    ``dpd`` is 0 for a bill that does not count (not yet due, paid, in a plan): the
    account's maximum DPD, which drives the lock ladder, is the max over its bills.
    """

    bill_id: str
    business_date: date
    dpd: int
    newly_overdue: bool = False  # emit bill.overdue
    penalty: Decimal = ZERO  # penalty interest to post
    late_fee: Decimal = ZERO  # late fee to post
    charge_off: bool = False  # write the bill off, emit bill.charged_off
    bureau_mark: bool = False  # record a credit bureau mark
    already_closed: bool = False  # this date was closed before: nothing to do
    # What the charge-off writes off (outstanding after this close's own postings).
    charge_off_principal: Decimal = ZERO
    charge_off_penalty: Decimal = ZERO
    charge_off_late_fee: Decimal = ZERO

    @property
    def overdue(self) -> bool:
        """The bill counts as overdue for this close (and for the account's ladder)."""
        return self.dpd >= 1

    @property
    def charge_off_amount(self) -> Decimal:
        """The amount of ``bill.charged_off``: everything still owed on the bill."""
        return self.charge_off_principal + self.charge_off_penalty + self.charge_off_late_fee


def counts_for_dpd(bill: BillState, business_date: date, rules: OverdueRules) -> bool:
    """A bill counts when it is past due with principal unpaid beyond the arrears tolerance
    and not in a plan."""
    return not bill.in_plan and in_arrears(bill.unpaid_principal, rules) and business_date > bill.due_date


def close_bill_for_day(
    bill: BillState, business_date: date, rules: OverdueRules, *, mark_dpd: int | None = None
) -> BillDayResult:
    """The close of ``business_date`` for one bill, in the rulebook's order:
    DPD and overdue detection, penalty interest, late fee, then charge-off.

    ``mark_dpd`` is CreditReportRules.mark_dpd; by default the end of grace + 1 (4),
    the rulebook's "when a bill passes the grace period".
    Idempotent: a date at or before ``bill.last_close_date`` does nothing.
    """
    if bill.last_close_date is not None and business_date <= bill.last_close_date:
        return BillDayResult(bill.bill_id, business_date, dpd=0, already_closed=True)
    if not counts_for_dpd(bill, business_date, rules):
        return BillDayResult(bill.bill_id, business_date, dpd=0)

    days = dpd(business_date, bill.due_date)
    penalty = _penalty_for_close(bill, rules)
    fee = _late_fee_for_close(bill, days, penalty, rules)
    charge_off = days >= rules.charge_off_dpd and not bill.charged_off
    mark_at = rules.late_fee_dpd if mark_dpd is None else mark_dpd
    return BillDayResult(
        bill_id=bill.bill_id,
        business_date=business_date,
        dpd=days,
        newly_overdue=not bill.overdue_flagged,
        penalty=penalty,
        late_fee=fee,
        charge_off=charge_off,
        bureau_mark=days >= mark_at and not bill.bureau_marked,
        charge_off_principal=bill.unpaid_principal if charge_off else ZERO,
        charge_off_penalty=bill.penalty_outstanding + penalty if charge_off else ZERO,
        charge_off_late_fee=bill.late_fee_outstanding + fee if charge_off else ZERO,
    )


def _penalty_for_close(bill: BillState, rules: OverdueRules) -> Decimal:
    """Penalty interest of one close: none after charge-off, capped."""
    if bill.charged_off:
        return ZERO
    return capped(
        daily_penalty(bill.unpaid_principal, rules),
        bill.original_principal,
        bill.overdue_charges,
        rules,
    )


def _late_fee_for_close(bill: BillState, days: int, penalty_today: Decimal, rules: OverdueRules) -> Decimal:
    """The late fee, only at the close that ends the grace period, after today's penalty
    has taken its share of the cap."""
    if days != rules.late_fee_dpd or bill.late_fee_charged > 0 or bill.charged_off:
        return ZERO
    return capped(
        late_fee(bill.unpaid_principal, rules),
        bill.original_principal,
        bill.overdue_charges + penalty_today,
        rules,
    )


def bill_after_close(bill: BillState, result: BillDayResult) -> BillState:
    """The bill as the close leaves it: the reference for what the SQL must write back."""
    if result.already_closed:
        return bill
    written_off = result.charge_off
    return replace(
        bill,
        penalty_charged_total=bill.penalty_charged_total + result.penalty,
        late_fee_charged=bill.late_fee_charged + result.late_fee,
        penalty_outstanding=bill.penalty_outstanding + result.penalty,
        late_fee_outstanding=bill.late_fee_outstanding + result.late_fee,
        overdue_flagged=bill.overdue_flagged or result.overdue,
        bureau_marked=bill.bureau_marked or result.bureau_mark,
        charged_off=bill.charged_off or written_off,
        last_close_date=result.business_date,
    )
