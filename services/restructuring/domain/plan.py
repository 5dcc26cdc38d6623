"""Life of an active plan: monitoring, default, payments, early settlement, adjustment
(RULES section 8).

A plan's state, as these functions see it, is its ``Schedule`` and what was paid on
each period (``paid``: period → ``InstallmentPaid(fee, principal)``; a period missing
from the mapping has nothing paid). Payments are applied oldest period first, fee then
principal within a period, so the paid periods always form a prefix: periods fully
paid, at most one partly paid, then nothing.

Definitions (where the rulebook leaves a choice, the choice is written here):

* An installment is **overdue** on business date T when its due date D < T and it is
  not fully paid; its DPD is T − D (the customer has the whole due date to pay, as
  for bills in section 2).
* The plan **defaults** when an overdue installment reaches DPD ≥
  ``default_installment_dpd`` (31) or ``default_overdue_installments`` (2) are
  overdue at once.
* **Default settlement**: ``outstanding_principal`` = unpaid principal of every
  period; ``fees_due`` = unpaid fees of periods due on or before T (a period's fee is
  earned at its due date, so the fee of an installment due on T itself is due); the
  fees of later periods are cancelled (``fees_cancelled``). Money is conserved:
  outstanding_principal + fees_due + fees_cancelled + paid = the schedule's total.
* **Current period** (early settlement): the first period not fully paid whose due
  date is ≥ T. The settlement amount is all unpaid principal plus the unpaid fees of
  every period up to and including the current one (overdue fees are never waived);
  fees of the periods after it are waived. When every unpaid period is already past
  due there is no current period and nothing is waived.
* A payment that covers the settlement amount settles the plan early (the rest of it is
  returned as ``unapplied``); a smaller one is applied oldest period first. After an
  early settlement the waived fees stay unpaid in ``paid``: the plan's completion is
  ``PaymentApplication.completed`` (record it), not something to re-derive from ``paid``.
* **Adjustment** replaces every period from the first one not fully paid (the next
  installment) with a new schedule of the remaining scheduled principal, at the plan's
  method and fee rate, with the same anchor date, so the new periods keep the plan's
  numbering and day of month. ``extend``'s ``new_term`` and the term found by
  ``lower_payment`` are the number of those new periods (the remaining term). What was
  already paid on the replaced periods is carried onto the new ones (fee then
  principal); in the odd case it exceeds the new schedule, the excess is ``unapplied``.
  ``lower_payment`` needs a target below the next installment's scheduled total
  (``target_not_lower``) and takes the shortest term from 1 to ``max_term`` whose
  regular payment meets it. The annualized rate disclosed is that of the new periods
  (remaining principal at t0, then their totals monthly).

Its length: a plan's monitoring, payments, settlement and adjustment all read and
write the same paid prefix of one schedule; apart, each would restate that invariant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

from services.restructuring.domain.apr import schedule_apr
from services.restructuring.domain.schedule import Installment, Schedule, ScheduleError, build_schedule
from shared.money import ZERO
from shared.rules import RestructuringRules

AdjustmentKind = Literal["extend", "lower_payment"]

INSTALLMENT_OVERDUE = "installment_overdue"
ALREADY_ADJUSTED = "already_adjusted"
NOTHING_REMAINING = "nothing_remaining"
TERM_TOO_LONG = "term_too_long"
NOT_LONGER = "not_longer"
INVALID_TERM = "invalid_term"
TARGET_NOT_LOWER = "target_not_lower"
TARGET_UNREACHABLE = "target_unreachable"
PRINCIPAL_TOO_SMALL = "principal_too_small"


class PlanError(ValueError):
    """A request that makes no sense on this plan (a payment of nothing, a default
    settlement of a plan with nothing overdue)."""


@dataclass(frozen=True)
class InstallmentPaid:
    """What was paid on one period, split as the allocation rule split it."""

    fee: Decimal = ZERO
    principal: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.fee + self.principal


Paid = Mapping[int, InstallmentPaid]
NOTHING_PAID = InstallmentPaid()


@dataclass(frozen=True)
class InstallmentPosition:
    """One period of the schedule next to what was paid on it."""

    installment: Installment
    paid: InstallmentPaid

    @property
    def fee_unpaid(self) -> Decimal:
        return self.installment.fee - self.paid.fee

    @property
    def principal_unpaid(self) -> Decimal:
        return self.installment.principal - self.paid.principal

    @property
    def unpaid(self) -> Decimal:
        return self.fee_unpaid + self.principal_unpaid

    @property
    def fully_paid(self) -> bool:
        return self.unpaid <= 0


def positions(schedule: Schedule, paid: Paid) -> list[InstallmentPosition]:
    return [InstallmentPosition(i, paid.get(i.period, NOTHING_PAID)) for i in schedule.periods]


def total_paid(paid: Paid) -> Decimal:
    return sum((p.total for p in paid.values()), ZERO)


# --- monitoring and default -------------------------------------------------------


@dataclass(frozen=True)
class OverdueInstallment:
    """``plan.installment.overdue``: the installment, its DPD and what is still unpaid."""

    period: int
    due_date: date
    dpd: int
    amount: Decimal


def overdue_installments(schedule: Schedule, paid: Paid, business_date: date) -> list[OverdueInstallment]:
    """Installments not fully paid after their due date, oldest first."""
    return [
        OverdueInstallment(
            period=p.installment.period,
            due_date=p.installment.due_date,
            dpd=(business_date - p.installment.due_date).days,
            amount=p.unpaid,
        )
        for p in positions(schedule, paid)
        if p.installment.due_date < business_date and not p.fully_paid
    ]


def is_defaulted_by(overdue: Sequence[OverdueInstallment], rules: RestructuringRules) -> bool:
    """The default rule on an already computed list of overdue installments."""
    return len(overdue) >= rules.default_overdue_installments or any(
        o.dpd >= rules.default_installment_dpd for o in overdue
    )


def is_defaulted(schedule: Schedule, paid: Paid, business_date: date, rules: RestructuringRules) -> bool:
    """An installment at DPD ≥ 31, or two installments overdue at once."""
    return is_defaulted_by(overdue_installments(schedule, paid, business_date), rules)


def is_completed(schedule: Schedule, paid: Paid) -> bool:
    return all(p.fully_paid for p in positions(schedule, paid))


@dataclass(frozen=True)
class PlanReview:
    """The daily monitor's view of one plan on one business date."""

    overdue: tuple[OverdueInstallment, ...]
    defaulted: bool
    completed: bool


def days_held(paused_on: date, resumed_on: date, plan_start: date) -> int:
    """RULES 2.8: the days of a delinquency pause (closes of ``paused_on`` + 1 … ``resumed_on``)
    that fell in the plan's life: its monitoring held on them, so they do not count."""
    return max(0, (resumed_on - max(paused_on, plan_start)).days)


def monitoring_date(business_date: date, held: int) -> date:
    """The date the monitor judges a plan on: the business date less the days it was held."""
    return business_date - timedelta(days=held)


def review_plan(schedule: Schedule, paid: Paid, business_date: date, rules: RestructuringRules) -> PlanReview:
    overdue = tuple(overdue_installments(schedule, paid, business_date))
    return PlanReview(overdue, is_defaulted_by(overdue, rules), is_completed(schedule, paid))


@dataclass(frozen=True)
class DefaultSettlement:
    """What a defaulted plan turns into: one overdue bill of ``bill_amount`` due on
    ``first_missed_due_date``; ``fees_cancelled`` are the future fees dropped."""

    outstanding_principal: Decimal
    fees_due: Decimal
    fees_cancelled: Decimal
    first_missed_due_date: date

    @property
    def bill_amount(self) -> Decimal:
        return self.outstanding_principal + self.fees_due


def default_settlement(schedule: Schedule, paid: Paid, business_date: date) -> DefaultSettlement:
    """The amounts of ``plan.defaulted`` (see the module's definitions)."""
    overdue = overdue_installments(schedule, paid, business_date)
    if not overdue:
        raise PlanError("a plan with no overdue installment cannot default")
    rows = positions(schedule, paid)
    return DefaultSettlement(
        outstanding_principal=sum((p.principal_unpaid for p in rows), ZERO),
        fees_due=sum((p.fee_unpaid for p in rows if p.installment.due_date <= business_date), ZERO),
        fees_cancelled=sum((p.fee_unpaid for p in rows if p.installment.due_date > business_date), ZERO),
        first_missed_due_date=overdue[0].due_date,
    )


# --- payments and early settlement ------------------------------------------------


@dataclass(frozen=True)
class EarlySettlementQuote:
    """What completes the plan today: ``amount`` = principal + fees; ``fees_waived``
    are the fees of the periods after the current one."""

    current_period: int | None
    principal: Decimal
    fees: Decimal
    fees_waived: Decimal

    @property
    def amount(self) -> Decimal:
        return self.principal + self.fees


def current_period(schedule: Schedule, paid: Paid, business_date: date) -> int | None:
    """The first period not fully paid whose due date is on or after the business date."""
    for p in positions(schedule, paid):
        if not p.fully_paid and p.installment.due_date >= business_date:
            return p.installment.period
    return None


def _fee_is_owed_on_settlement(period: int, current: int | None) -> bool:
    return current is None or period <= current


def early_settlement_quote(schedule: Schedule, paid: Paid, business_date: date) -> EarlySettlementQuote:
    current = current_period(schedule, paid, business_date)
    rows = positions(schedule, paid)
    owed = [p for p in rows if _fee_is_owed_on_settlement(p.installment.period, current)]
    waived = [p for p in rows if not _fee_is_owed_on_settlement(p.installment.period, current)]
    return EarlySettlementQuote(
        current_period=current,
        principal=sum((p.principal_unpaid for p in rows), ZERO),
        fees=sum((p.fee_unpaid for p in owed), ZERO),
        fees_waived=sum((p.fee_unpaid for p in waived), ZERO),
    )


@dataclass(frozen=True)
class InstallmentAllocation:
    """What one payment gave one period."""

    period: int
    fee: Decimal
    principal: Decimal

    @property
    def total(self) -> Decimal:
        return self.fee + self.principal


@dataclass(frozen=True)
class PaymentApplication:
    """The outcome of a payment: per-period allocations, the new ``paid`` mapping,
    the periods it finished (``plan.installment.paid``), whether it settled the plan
    early (``plan.completed``, with ``fees_waived``) and what it could not use."""

    allocations: tuple[InstallmentAllocation, ...]
    paid: dict[int, InstallmentPaid]
    periods_completed: tuple[int, ...]
    completed: bool
    settled_early: bool
    fees_waived: Decimal
    unapplied: Decimal


def _allocate_in_order(
    rows: Sequence[InstallmentPosition], amount: Decimal
) -> tuple[list[InstallmentAllocation], Decimal]:
    """Oldest period first, fee then principal within a period; returns the leftover."""
    allocations: list[InstallmentAllocation] = []
    left = amount
    for row in rows:
        if left <= 0:
            break
        fee = min(left, max(row.fee_unpaid, ZERO))
        principal = min(left - fee, max(row.principal_unpaid, ZERO))
        if fee or principal:
            allocations.append(InstallmentAllocation(row.installment.period, fee, principal))
        left -= fee + principal
    return allocations, left


def _allocate_settlement(rows: Sequence[InstallmentPosition], current: int | None) -> list[InstallmentAllocation]:
    """All unpaid principal, and the unpaid fees up to the current period."""
    allocations = []
    for row in rows:
        fee = row.fee_unpaid if _fee_is_owed_on_settlement(row.installment.period, current) else ZERO
        if fee or row.principal_unpaid:
            allocations.append(InstallmentAllocation(row.installment.period, fee, row.principal_unpaid))
    return allocations


def _with_allocations(paid: Paid, allocations: Sequence[InstallmentAllocation]) -> dict[int, InstallmentPaid]:
    result = dict(paid)
    for a in allocations:
        before = result.get(a.period, NOTHING_PAID)
        result[a.period] = InstallmentPaid(before.fee + a.fee, before.principal + a.principal)
    return result


def apply_payment(schedule: Schedule, paid: Paid, amount: Decimal, business_date: date) -> PaymentApplication:
    """Apply money the plan received on ``business_date`` (see the module's definitions)."""
    if amount <= 0:
        raise PlanError(f"a payment must be positive, got {amount}")
    rows = positions(schedule, paid)
    quote = early_settlement_quote(schedule, paid, business_date)
    settles = amount >= quote.amount
    if settles:
        allocations, unapplied = _allocate_settlement(rows, quote.current_period), amount - quote.amount
    else:
        allocations, unapplied = _allocate_in_order(rows, amount)
    new_paid = _with_allocations(paid, allocations)
    finished_before = {p.installment.period for p in rows if p.fully_paid}
    if settles:
        done = tuple(p.installment.period for p in rows if p.installment.period not in finished_before)
    else:
        done = tuple(
            p.installment.period
            for p in positions(schedule, new_paid)
            if p.fully_paid and p.installment.period not in finished_before
        )
    return PaymentApplication(
        allocations=tuple(allocations),
        paid=new_paid,
        periods_completed=done,
        completed=settles,
        settled_early=settles and quote.fees_waived > 0,
        fees_waived=quote.fees_waived if settles else ZERO,
        unapplied=unapplied,
    )


# --- adjustment -------------------------------------------------------------------


@dataclass(frozen=True)
class AdjustmentAccepted:
    """``plan.adjusted``: ``rescheduled`` is the new remaining schedule (disclosed with
    its ``apr`` and ``monthly_payment``); ``schedule`` is the whole plan after the
    change (kept periods + rescheduled ones) and ``paid`` its paid mapping."""

    kind: AdjustmentKind
    new_term: int
    rescheduled: Schedule
    schedule: Schedule
    paid: dict[int, InstallmentPaid]
    apr: Decimal
    monthly_payment: Decimal
    unapplied: Decimal


@dataclass(frozen=True)
class AdjustmentRejected:
    """``plan.adjustment.rejected`` with its reason."""

    reason: str


AdjustmentDecision = AdjustmentAccepted | AdjustmentRejected


@dataclass(frozen=True)
class _Remaining:
    kept: tuple[InstallmentPosition, ...]
    replaced: tuple[InstallmentPosition, ...]

    @property
    def principal(self) -> Decimal:
        return sum((p.installment.principal for p in self.replaced), ZERO)

    @property
    def carried(self) -> Decimal:
        return sum((p.paid.total for p in self.replaced), ZERO)

    @property
    def first_period(self) -> int:
        return self.replaced[0].installment.period

    @property
    def next_payment(self) -> Decimal:
        return self.replaced[0].installment.total


def _remaining_or_rejection(
    schedule: Schedule, paid: Paid, business_date: date, adjustments_made: int, rules: RestructuringRules
) -> _Remaining | AdjustmentRejected:
    """The checks every adjustment shares, then the split into kept and replaced periods."""
    if adjustments_made >= rules.adjustments_per_plan:
        return AdjustmentRejected(ALREADY_ADJUSTED)
    if overdue_installments(schedule, paid, business_date):
        return AdjustmentRejected(INSTALLMENT_OVERDUE)
    rows = positions(schedule, paid)
    first_open = next((i for i, p in enumerate(rows) if not p.fully_paid), None)
    if first_open is None:
        return AdjustmentRejected(NOTHING_REMAINING)
    return _Remaining(tuple(rows[:first_open]), tuple(rows[first_open:]))


def _reschedule(schedule: Schedule, remaining: _Remaining, term: int) -> Schedule:
    return build_schedule(
        schedule.method,
        remaining.principal,
        term,
        schedule.monthly_fee_rate,
        schedule.start_date,
        remaining.first_period,
    )


def _accept(
    schedule: Schedule, paid: Paid, remaining: _Remaining, new: Schedule, kind: AdjustmentKind
) -> AdjustmentAccepted:
    """The plan after the change; the money paid on the replaced periods moves onto the new ones."""
    kept = tuple(p.installment for p in remaining.kept)
    whole = replace(schedule, periods=kept + new.periods)
    kept_paid = {p.installment.period: p.paid for p in remaining.kept if p.installment.period in paid}
    allocations, unapplied = _allocate_in_order(positions(new, {}), remaining.carried)
    return AdjustmentAccepted(
        kind=kind,
        new_term=new.term,
        rescheduled=new,
        schedule=whole,
        paid=_with_allocations(kept_paid, allocations),
        apr=schedule_apr(new),
        monthly_payment=new.monthly_payment,
        unapplied=unapplied,
    )


def extend(
    schedule: Schedule, paid: Paid, business_date: date, adjustments_made: int, new_term: int, rules: RestructuringRules
) -> AdjustmentDecision:
    """``extend``: spread the remaining principal over a longer remaining term."""
    remaining = _remaining_or_rejection(schedule, paid, business_date, adjustments_made, rules)
    if isinstance(remaining, AdjustmentRejected):
        return remaining
    if new_term < 1:
        return AdjustmentRejected(INVALID_TERM)
    if new_term > rules.max_term:
        return AdjustmentRejected(TERM_TOO_LONG)
    if new_term <= len(remaining.replaced):
        return AdjustmentRejected(NOT_LONGER)
    try:
        new = _reschedule(schedule, remaining, new_term)
    except ScheduleError:
        return AdjustmentRejected(PRINCIPAL_TOO_SMALL)
    return _accept(schedule, paid, remaining, new, "extend")


def lower_payment(
    schedule: Schedule,
    paid: Paid,
    business_date: date,
    adjustments_made: int,
    target: Decimal,
    rules: RestructuringRules,
) -> AdjustmentDecision:
    """``lower_payment``: the shortest remaining term whose regular payment ≤ target."""
    remaining = _remaining_or_rejection(schedule, paid, business_date, adjustments_made, rules)
    if isinstance(remaining, AdjustmentRejected):
        return remaining
    if target >= remaining.next_payment:
        return AdjustmentRejected(TARGET_NOT_LOWER)
    for term in range(1, rules.max_term + 1):
        try:
            new = _reschedule(schedule, remaining, term)
        except ScheduleError:
            break  # the remaining principal is too small for longer terms
        if new.monthly_payment <= target:
            return _accept(schedule, paid, remaining, new, "lower_payment")
    return AdjustmentRejected(TARGET_UNREACHABLE)
