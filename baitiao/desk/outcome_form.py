"""The call-outcome form's checks, before anything is sent: pure, no IO.

A promise to pay needs a date from the call's day to ``promise_max_days`` after it
(RULES 6.7, the rule collections applies too) and an amount, if given, above zero and
not above what the account owes. The errors are per field, in words a collector reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from services.collections.domain import latest_promise_date
from shared.rules import ContactCompliance

OUTCOMES = ("no_answer", "promise_to_pay", "refused", "wrong_number", "paid")


@dataclass(frozen=True)
class OutcomeForm:
    outcome: str
    promised_date: date | None
    promised_amount: Decimal | None


def read_outcome_form(
    outcome: str,
    promised_date: str,
    promised_amount: str,
    *,
    today: date,
    owed: Decimal,
    rules: ContactCompliance,
) -> tuple[OutcomeForm | None, dict[str, str]]:
    """The form's values, or None with an error per field."""
    errors: dict[str, str] = {}
    if outcome not in OUTCOMES:
        errors["outcome"] = "choose an outcome"
    day: date | None = None
    amount: Decimal | None = None
    if outcome == "promise_to_pay":
        try:
            day = date.fromisoformat(promised_date.strip())
        except ValueError:
            errors["promised_date"] = "give the promised date (YYYY-MM-DD)"
        else:
            last = latest_promise_date(today, rules)
            if day < today:
                errors["promised_date"] = f"the promised date is before today ({today.isoformat()})"
            elif day > last:
                errors["promised_date"] = f"at most {rules.promise_max_days} days ahead: {last.isoformat()} or sooner"
        if promised_amount.strip():
            try:
                amount = Decimal(promised_amount.strip())
            except InvalidOperation:
                errors["promised_amount"] = "an amount such as 500.00"
            else:
                if not amount.is_finite() or amount <= 0:
                    errors["promised_amount"] = "the amount must be above zero"
                elif amount.as_tuple().exponent < -2:  # type: ignore[operator]
                    errors["promised_amount"] = "at most two decimals"
                elif amount > owed:
                    errors["promised_amount"] = f"more than the {owed} owed"
    if errors:
        return None, errors
    return OutcomeForm(outcome, day, amount), {}
