"""Repayment allocation and late-arriving repayments (RULES section 4).

``allocate_repayment`` splits one repayment over what the account owes:

1. bills by due date, oldest first (ties by bill id, so the order is total);
2. within a bill: penalty interest, then late fee, then principal;
   the grace rule: a bill in its grace period (1 <= DPD <= 3 on the payment date)
   takes principal first, and when this payment clears its principal the penalty
   it accrued is waived (``Allocation.waivers``) instead of being paid;
3. then the active plan (``plan_outstanding``);
4. then a credit balance, which pays the next bill when it is issued (the service
   allocates the balance to the new bill with this same function).

Always: sum(lines) + credit_balance == amount, and no line exceeds what was due.

A repayment takes effect on the local date P of its ``paid_at``, after the close of P
(see overdue.py: the close of P accrued on the principal before the payment). When it
arrives after the closes of dates > P already ran, the service applies it *as of P*:

a. ``dues_as_of(due_now, closes, P)`` for each bill: what was owed as of P, i.e. today's
   dues without the penalty and late fee that the closes of dates > P posted;
b. ``allocate_repayment(amount, those dues, plan_outstanding, as_of=P, rules)``: order and
   grace rule judged on P (so a grace waiver covers the penalty accrued up to P);
c. for each bill whose principal the allocation repaid,
   ``backdated_penalty_reversal(closes, P, principal_repaid, rules)``: for every close of
   a date > P, what it charged on the principal this payment repaid is reversed:
   penalty round(unpaid_then x rate) - round(unpaid_after x rate); the late fee of the
   close that ended the grace period likewise; and its bureau mark is withdrawn when the
   bill's principal was fully repaid as of P (the bill never passed grace unpaid).

Decisions not spelled out by RULES.md, for late-arriving repayments:

* Only reversals: a re-judged close never charges more than it did (room freed under
  the 24% cap is not used retroactively), so each reversal is >= 0 and at most what
  that close posted.
* Repayments applied in between keep their allocations; a close's "unpaid after" is
  its principal minus this payment's principal, floored at 0.
* ``bill.overdue`` events already emitted stay emitted; the service re-runs the lock
  ladder with the re-judged maximum DPD.
* A charge-off done by a close after P is not undone here (a notice more than 180 days
  late is an operator's case); money reaching a charged-off bill is a recovery.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Literal

from shared.money import FEN, ZERO
from shared.rules import OverdueRules

from .overdue import (
    BillState,
    GraceWaiver,
    daily_penalty,
    dpd,
    grace_waiver_applies,
    in_grace,
    late_fee,
)

Target = Literal["bill", "plan"]
Component = Literal["penalty_interest", "late_fee", "principal", "plan"]

PENALTY_INTEREST: Component = "penalty_interest"
LATE_FEE: Component = "late_fee"
PRINCIPAL: Component = "principal"
PLAN: Component = "plan"

_DEFAULT_ORDER: tuple[Component, ...] = (PENALTY_INTEREST, LATE_FEE, PRINCIPAL)
_GRACE_ORDER: tuple[Component, ...] = (PRINCIPAL, PENALTY_INTEREST, LATE_FEE)


@dataclass(frozen=True)
class BillDue:
    """What one bill still owes, by component (bills in a plan are not passed)."""

    bill_id: str
    due_date: date
    penalty_interest: Decimal
    late_fee: Decimal
    principal: Decimal

    def owed(self, component: Component) -> Decimal:
        return {PENALTY_INTEREST: self.penalty_interest, LATE_FEE: self.late_fee, PRINCIPAL: self.principal}[component]

    @property
    def total(self) -> Decimal:
        return self.penalty_interest + self.late_fee + self.principal


@dataclass(frozen=True)
class AllocationLine:
    """One line of ``repayment.applied.allocations``."""

    target: Target
    target_id: str
    component: Component
    amount: Decimal


@dataclass(frozen=True)
class Allocation:
    """How one repayment was split. ``waivers`` are grace waivers it triggered: no money,
    a reversing entry each (ledger.grace_waiver_posted)."""

    amount: Decimal
    as_of: date
    lines: tuple[AllocationLine, ...]
    credit_balance: Decimal
    waivers: tuple[GraceWaiver, ...] = ()

    def paid(self, target_id: str, component: Component) -> Decimal:
        """What this repayment paid on one component of one bill (or of the plan)."""
        return sum(
            (line.amount for line in self.lines if line.target_id == target_id and line.component == component),
            ZERO,
        )

    @property
    def allocated(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)


def _check_amount(amount: Decimal) -> None:
    if amount < 0 or amount != amount.quantize(FEN):
        raise ValueError(f"a repayment amount is >= 0 with at most two decimals, not {amount}")


def _bill_order(bills: Iterable[BillDue]) -> list[BillDue]:
    return sorted(bills, key=lambda b: (b.due_date, b.bill_id))


def _component_order(bill: BillDue, as_of: date, rules: OverdueRules) -> tuple[Component, ...]:
    """Penalty, late fee, principal; principal first for a bill in its grace period."""
    return _GRACE_ORDER if in_grace(dpd(as_of, bill.due_date), rules) else _DEFAULT_ORDER


def _allocate_bill(
    bill: BillDue, remaining: Decimal, as_of: date, rules: OverdueRules
) -> tuple[list[AllocationLine], GraceWaiver | None, Decimal]:
    """Lines paid on one bill, the grace waiver it earns, and the money left."""
    lines: list[AllocationLine] = []
    waiver: GraceWaiver | None = None
    for component in _component_order(bill, as_of, rules):
        owed = bill.owed(component)
        if component == PENALTY_INTEREST and owed > 0:
            principal_left = bill.principal - sum((line.amount for line in lines if line.component == PRINCIPAL), ZERO)
            if grace_waiver_applies(bill.due_date, as_of, principal_left, rules):
                waiver = GraceWaiver(bill.bill_id, as_of, dpd(as_of, bill.due_date), owed)
                continue
        pay = min(owed, remaining)
        if pay > 0:
            lines.append(AllocationLine("bill", bill.bill_id, component, pay))
            remaining -= pay
    return lines, waiver, remaining


def allocate_repayment(
    amount: Decimal,
    bills: Sequence[BillDue],
    plan_outstanding: Decimal,
    as_of: date,
    rules: OverdueRules,
    *,
    plan_id: str = "plan",
) -> Allocation:
    """Split ``amount`` paid on ``as_of`` over the bills, the plan, then a credit balance.

    ``bills`` are the account's bills with anything owed (not those in a plan), their
    dues as of ``as_of`` (see ``dues_as_of`` for a late-arriving payment).
    """
    _check_amount(amount)
    remaining = amount
    lines: list[AllocationLine] = []
    waivers: list[GraceWaiver] = []
    for bill in _bill_order(bills):
        bill_lines, waiver, remaining = _allocate_bill(bill, remaining, as_of, rules)
        lines.extend(bill_lines)
        if waiver is not None:
            waivers.append(waiver)
    to_plan = min(remaining, max(plan_outstanding, ZERO))
    if to_plan > 0:
        lines.append(AllocationLine("plan", plan_id, PLAN, to_plan))
        remaining -= to_plan
    return Allocation(amount, as_of, tuple(lines), remaining, tuple(waivers))


def bill_due(bill: BillState) -> BillDue:
    """The dues of a bill as the close keeps it."""
    return BillDue(
        bill_id=bill.bill_id,
        due_date=bill.due_date,
        penalty_interest=bill.penalty_outstanding,
        late_fee=bill.late_fee_outstanding,
        principal=bill.unpaid_principal,
    )


def bill_after_repayment(bill: BillState, allocation: Allocation) -> BillState:
    """The bill once a repayment's lines and grace waiver are applied to it."""
    waived = sum((w.penalty_waived for w in allocation.waivers if w.bill_id == bill.bill_id), ZERO)
    return replace(
        bill,
        unpaid_principal=bill.unpaid_principal - allocation.paid(bill.bill_id, PRINCIPAL),
        penalty_outstanding=bill.penalty_outstanding - allocation.paid(bill.bill_id, PENALTY_INTEREST) - waived,
        late_fee_outstanding=bill.late_fee_outstanding - allocation.paid(bill.bill_id, LATE_FEE),
    )


@dataclass(frozen=True)
class CloseAccrual:
    """What one past close did to one bill (the service's accrual history)."""

    close_date: date
    unpaid_principal: Decimal  # the principal this close accrued on
    penalty: Decimal  # penalty interest this close posted
    late_fee: Decimal = ZERO  # late fee this close posted
    bureau_mark: bool = False  # this close recorded the bureau mark


def dues_as_of(due_now: BillDue, closes: Sequence[CloseAccrual], paid_on: date) -> BillDue:
    """A bill's dues as of the end of ``paid_on``: today's dues without the charges the
    closes of later dates posted (floored at 0 where later payments already paid them)."""
    later = [c for c in closes if c.close_date > paid_on]
    penalty_after = sum((c.penalty for c in later), ZERO)
    fee_after = sum((c.late_fee for c in later), ZERO)
    return BillDue(
        bill_id=due_now.bill_id,
        due_date=due_now.due_date,
        penalty_interest=max(ZERO, due_now.penalty_interest - penalty_after),
        late_fee=max(ZERO, due_now.late_fee - fee_after),
        principal=due_now.principal,
    )


@dataclass(frozen=True)
class CloseReversal:
    """What one re-judged close over-charged: the amounts to reverse."""

    close_date: date
    penalty: Decimal
    late_fee: Decimal


@dataclass(frozen=True)
class BackdatedReversal:
    """The reversing entries a late-arriving repayment earns on one bill."""

    paid_on: date
    per_close: tuple[CloseReversal, ...]
    bureau_mark_withdrawn: bool

    @property
    def penalty_reversed(self) -> Decimal:
        return sum((c.penalty for c in self.per_close), ZERO)

    @property
    def late_fee_reversed(self) -> Decimal:
        return sum((c.late_fee for c in self.per_close), ZERO)


def backdated_penalty_reversal(
    closes: Sequence[CloseAccrual],
    paid_on: date,
    principal_repaid: Decimal,
    rules: OverdueRules,
) -> BackdatedReversal:
    """Re-judge the closes of dates > ``paid_on`` as if ``principal_repaid`` had left the
    bill on ``paid_on`` (the close of ``paid_on`` itself stands: the payment came after
    it). Per close: penalty posted - round(unpaid_after x rate), never below 0; the late
    fee likewise; the bureau mark goes when nothing was left unpaid at the close that
    recorded it.
    """
    reversals: list[CloseReversal] = []
    mark_withdrawn = False
    for close in sorted(closes, key=lambda c: c.close_date):
        if close.close_date <= paid_on:
            continue
        unpaid_after = max(ZERO, close.unpaid_principal - principal_repaid)
        penalty = close.penalty - _rejudged(close.penalty, daily_penalty(unpaid_after, rules), unpaid_after)
        fee = close.late_fee - _rejudged(close.late_fee, late_fee(unpaid_after, rules), unpaid_after)
        if penalty > 0 or fee > 0:
            reversals.append(CloseReversal(close.close_date, penalty, fee))
        mark_withdrawn = mark_withdrawn or (close.bureau_mark and unpaid_after == 0)
    return BackdatedReversal(paid_on, tuple(reversals), mark_withdrawn)


def _rejudged(posted: Decimal, charge_on_unpaid_after: Decimal, unpaid_after: Decimal) -> Decimal:
    """What the close should have posted: nothing on a repaid bill, else the charge on
    the lower principal, never more than it did post."""
    if unpaid_after <= 0:
        return ZERO
    return min(posted, charge_on_unpaid_after)
