"""Promises to pay: the pause they buy, and what happens when one is broken.

RULES section 6: "A promise to pay (from a collector's outcome) pauses contact until
the promised date plus one day; a broken promise moves the account on to the next
action at once."

Decisions made here (the rulebook leaves them open):

- The pause is *inclusive* of promised date + 1 (``promise_pause_extra_days``): a
  payment made late on the promised day may reach the ledger the next day through the
  gateway, and the customer must not be chased for money already sent. Contact resumes
  on promised date + 2.
- A promise is kept when the repayments since it was made reach the promised amount,
  or when the account is no longer overdue. A partial payment does not keep it (the
  customer said how much); with no promised amount any repayment keeps it.
- A promise is broken the first day after the pause when it is not kept. The service
  then sets ``CaseView.promise_broken`` and :func:`strategy.actions_for_day` brings the
  stage's next action forward to that day.
- A promised date before the day the outcome was recorded is refused: it would pause
  nothing and hide a data error.
- The outcome ``paid`` ("I have already paid") is treated as a promise to pay on the
  day it was recorded: contact pauses through the next day while the money travels,
  and if nothing arrives it is a broken promise like any other.
- ``wrong_number`` marks the phone as not the customer's own (the guard then refuses
  it as ``not_own_phone``); ``no_answer`` and ``refused`` change nothing by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from shared.rules import ContactCompliance


class CallOutcome(StrEnum):
    """The collector's outcome of a call task (``collection.outcome.recorded``)."""

    NO_ANSWER = "no_answer"
    PROMISE_TO_PAY = "promise_to_pay"
    REFUSED = "refused"
    WRONG_NUMBER = "wrong_number"
    PAID = "paid"


class PromiseState(StrEnum):
    """Where a promise stands on a business date."""

    PENDING = "pending"
    KEPT = "kept"
    BROKEN = "broken"


class PromiseError(ValueError):
    """An outcome whose promise cannot be honoured as given."""


@dataclass(frozen=True)
class Promise:
    """A promise to pay: made on ``recorded_on``, to pay ``promised_amount`` by ``promised_date``."""

    recorded_on: date
    promised_date: date
    promised_amount: Decimal | None = None


@dataclass(frozen=True)
class OutcomeEffect:
    """What a collector's outcome changes on the case.

    ``promise`` and ``pause_until`` (inclusive) when contact pauses; ``phone_reported_wrong``
    when the number must not be used any more.
    """

    promise: Promise | None = None
    pause_until: date | None = None
    phone_reported_wrong: bool = False


def pause_until(promised_date: date, rules: ContactCompliance) -> date:
    """The last business date on which a promise pauses contact: promised date + 1."""
    return promised_date + timedelta(days=rules.promise_pause_extra_days)


def latest_promise_date(recorded_on: date, rules: ContactCompliance) -> date:
    """The last date a promise made on ``recorded_on`` may name (RULES 6.7)."""
    return recorded_on + timedelta(days=rules.promise_max_days)


def effect_of_outcome(
    outcome: CallOutcome,
    *,
    recorded_on: date,
    promised_date: date | None,
    promised_amount: Decimal | None,
    rules: ContactCompliance,
) -> OutcomeEffect:
    """Turn a collector's outcome into its effect on the case (see the module docstring)."""
    if outcome is CallOutcome.WRONG_NUMBER:
        return OutcomeEffect(phone_reported_wrong=True)
    if outcome is CallOutcome.PAID:
        return _promise_effect(Promise(recorded_on, recorded_on, None), rules)
    if outcome is CallOutcome.PROMISE_TO_PAY:
        return _promise_effect(_promise(recorded_on, promised_date, promised_amount, rules), rules)
    return OutcomeEffect()


def _promise(
    recorded_on: date, promised_date: date | None, promised_amount: Decimal | None, rules: ContactCompliance
) -> Promise:
    if promised_date is None:
        raise PromiseError("a promise to pay needs a promised date")
    if promised_date < recorded_on:
        raise PromiseError(f"promised date {promised_date} is before the call on {recorded_on}")
    if promised_date > latest_promise_date(recorded_on, rules):
        raise PromiseError(f"promised date {promised_date} is more than {rules.promise_max_days} days after the call")
    if promised_amount is not None and promised_amount <= 0:
        raise PromiseError(f"promised amount {promised_amount} must be positive")
    return Promise(recorded_on, promised_date, promised_amount)


def _promise_effect(promise: Promise, rules: ContactCompliance) -> OutcomeEffect:
    return OutcomeEffect(promise=promise, pause_until=pause_until(promise.promised_date, rules))


def promise_state(
    promise: Promise,
    business_date: date,
    *,
    still_overdue: bool,
    repaid_since_promise: Decimal,
    rules: ContactCompliance,
) -> PromiseState:
    """Kept once the promised money arrived (or nothing is overdue any more), pending through
    the pause, broken on the first day after the pause otherwise."""
    if not still_overdue or _paid_enough(promise, repaid_since_promise):
        return PromiseState.KEPT
    if business_date <= pause_until(promise.promised_date, rules):
        return PromiseState.PENDING
    return PromiseState.BROKEN


def _paid_enough(promise: Promise, repaid: Decimal) -> bool:
    if promise.promised_amount is None:
        return repaid > 0
    return repaid >= promise.promised_amount
