"""RULES 6.7: a promised date at most ``promise_max_days`` after the call."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.collections.domain import CallOutcome, PromiseError, effect_of_outcome, latest_promise_date
from shared.rules import ContactCompliance

RULES = ContactCompliance()
CALL = date(2026, 3, 10)


def test_the_last_allowed_date_is_the_window_end() -> None:
    assert latest_promise_date(CALL, RULES) == CALL + timedelta(days=30)
    effect = effect_of_outcome(
        CallOutcome.PROMISE_TO_PAY,
        recorded_on=CALL,
        promised_date=CALL + timedelta(days=30),
        promised_amount=None,
        rules=RULES,
    )
    assert effect.promise is not None


def test_a_promise_beyond_the_window_is_refused() -> None:
    with pytest.raises(PromiseError, match="30 days"):
        effect_of_outcome(
            CallOutcome.PROMISE_TO_PAY,
            recorded_on=CALL,
            promised_date=CALL + timedelta(days=31),
            promised_amount=None,
            rules=RULES,
        )
