"""Wire field types: money as decimal strings, rates as fraction strings, dates.

A float never becomes money: a JSON number is refused with a message saying so.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, PlainSerializer

from shared.money import FEN


def _decimal_from_wire(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("must be a decimal string such as \"1000.00\" (numbers are not accepted for money)")
    try:
        parsed = Decimal(value.strip())
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not a decimal string") from exc
    if not parsed.is_finite():
        raise ValueError(f"{value!r} is not a finite amount")
    return parsed


def _two_decimals(value: Decimal) -> Decimal:
    if value != value.quantize(FEN):
        raise ValueError(f"{value} has more than two decimals")
    return value.quantize(FEN)


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError(f"{value} must be greater than zero")
    return value


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError(f"{value} must not be negative")
    return value


_money_out = PlainSerializer(lambda v: str(v.quantize(FEN)), return_type=str)
_rate_out = PlainSerializer(lambda v: str(v.quantize(Decimal("0.0001"))), return_type=str)

# Any decimal string: commands whose business check answers with a reason code
# (purchase.requested, repayment.received) take this and judge the value themselves.
DecimalString = Annotated[Decimal, BeforeValidator(_decimal_from_wire), PlainSerializer(lambda v: str(v), return_type=str)]
Money = Annotated[Decimal, BeforeValidator(lambda v: _non_negative(_two_decimals(_decimal_from_wire(v)))), _money_out]
SignedMoney = Annotated[Decimal, BeforeValidator(lambda v: _two_decimals(_decimal_from_wire(v))), _money_out]
PositiveMoney = Annotated[Decimal, BeforeValidator(lambda v: _positive(_two_decimals(_decimal_from_wire(v)))), _money_out]
Rate = Annotated[Decimal, BeforeValidator(lambda v: _non_negative(_decimal_from_wire(v))), _rate_out]
BusinessDate = date
Timestamp = AwareDatetime
