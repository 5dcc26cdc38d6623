"""Promises to pay: the pause (through promised date + 1) and broken promises."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.collections.domain.promises import (
    CallOutcome,
    OutcomeEffect,
    Promise,
    PromiseError,
    PromiseState,
    effect_of_outcome,
    pause_until,
    promise_state,
)
from shared.rules import ContactCompliance

RULES = ContactCompliance()
CALLED = date(2026, 4, 20)
PROMISED = date(2026, 4, 25)
PROMISE = Promise(CALLED, PROMISED, Decimal("500.00"))


def effect(
    outcome: CallOutcome, promised_date: date | None = PROMISED, amount: Decimal | None = Decimal("500.00")
) -> OutcomeEffect:
    return effect_of_outcome(
        outcome, recorded_on=CALLED, promised_date=promised_date, promised_amount=amount, rules=RULES
    )


def test_promise_pauses_through_promised_date_plus_one() -> None:
    assert pause_until(PROMISED, RULES) == date(2026, 4, 26)
    result = effect(CallOutcome.PROMISE_TO_PAY)
    assert result.promise == PROMISE and result.pause_until == date(2026, 4, 26)


def test_claimed_payment_is_a_promise_for_today() -> None:
    result = effect(CallOutcome.PAID, promised_date=None, amount=None)
    assert result.promise == Promise(CALLED, CALLED, None) and result.pause_until == date(2026, 4, 21)


def test_wrong_number_flags_the_phone_and_others_change_nothing() -> None:
    assert effect(CallOutcome.WRONG_NUMBER).phone_reported_wrong
    assert effect(CallOutcome.NO_ANSWER) == OutcomeEffect()
    assert effect(CallOutcome.REFUSED) == OutcomeEffect()


@pytest.mark.parametrize(
    ("promised_date", "amount", "message"),
    [
        (None, None, "needs a promised date"),
        (date(2026, 4, 19), None, "before the call"),
        (PROMISED, Decimal("0"), "positive"),
    ],
)
def test_invalid_promises_are_refused(promised_date: date | None, amount: Decimal | None, message: str) -> None:
    with pytest.raises(PromiseError, match=message):
        effect(CallOutcome.PROMISE_TO_PAY, promised_date, amount)


def state(day: date, *, overdue: bool = True, repaid: str = "0") -> PromiseState:
    return promise_state(PROMISE, day, still_overdue=overdue, repaid_since_promise=Decimal(repaid), rules=RULES)


def test_pending_through_the_pause_then_broken() -> None:
    assert state(date(2026, 4, 25)) is PromiseState.PENDING
    assert state(date(2026, 4, 26)) is PromiseState.PENDING
    assert state(date(2026, 4, 27)) is PromiseState.BROKEN


def test_kept_when_the_promised_amount_arrives_or_the_account_is_cured() -> None:
    assert state(date(2026, 4, 24), repaid="500.00") is PromiseState.KEPT
    assert state(date(2026, 4, 30), repaid="500.00") is PromiseState.KEPT
    assert state(date(2026, 4, 30), overdue=False) is PromiseState.KEPT


def test_a_partial_payment_does_not_keep_the_promise() -> None:
    assert state(date(2026, 4, 27), repaid="100.00") is PromiseState.BROKEN


def test_without_an_amount_any_repayment_keeps_it() -> None:
    promise = Promise(CALLED, PROMISED, None)
    kept = promise_state(
        promise, date(2026, 4, 30), still_overdue=True, repaid_since_promise=Decimal("0.01"), rules=RULES
    )
    broken = promise_state(
        promise, date(2026, 4, 30), still_overdue=True, repaid_since_promise=Decimal("0"), rules=RULES
    )
    assert (kept, broken) == (PromiseState.KEPT, PromiseState.BROKEN)
