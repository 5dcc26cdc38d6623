"""Wire field types: money as decimal strings, rates as fraction strings, dates, bounded texts.

A float never becomes money: a JSON number is refused with a message saying so. The
messages never repeat the value they refuse (an income or a limit is personal data, and
the messages travel back to the sender in a rejection's ``errors``).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, PlainSerializer

from shared.money import FEN

# Every amount on the wire is below this: twelve digits of yuan fit the services' integer
# fen columns many times over and keep every sum exact in Decimal's 28 digits.
MAX_AMOUNT = Decimal("1000000000000")
# The longest decimal string accepted (the width of the column that keeps one as received).
MAX_DECIMAL_CHARS = 40
# Every date on the wire, and every timestamp's date in its own offset, lies in this range:
# the services turn timestamps into Asia/Shanghai dates, which the ends of Python's
# calendar (years 1 and 9999) would overflow.
FIRST_DATE = date(1900, 1, 1)
LAST_DATE = date(2999, 12, 31)
# Inbound identifiers and texts are held to the columns that store them.
ID_MAX = 64
TEXT_MAX = 128


def _decimal_from_wire(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError('must be a decimal string such as "1000.00" (numbers are not accepted for money)')
    if len(value) > MAX_DECIMAL_CHARS:
        raise ValueError(f"must be at most {MAX_DECIMAL_CHARS} characters")
    try:
        parsed = Decimal(value.strip())
    except InvalidOperation as exc:
        raise ValueError("is not a decimal string") from exc
    if not parsed.is_finite():
        raise ValueError("is not a finite amount")
    if abs(parsed) >= MAX_AMOUNT:
        raise ValueError(f"must be less than {MAX_AMOUNT} in absolute value")
    return parsed


def _two_decimals(value: Decimal) -> Decimal:
    if value != value.quantize(FEN):
        raise ValueError("has more than two decimals")
    return value.quantize(FEN)


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _in_calendar(value: date) -> date:
    day = value.date() if isinstance(value, datetime) else value
    if not FIRST_DATE <= day <= LAST_DATE:
        raise ValueError(f"must lie between {FIRST_DATE} and {LAST_DATE}")
    return value


_money_out = PlainSerializer(lambda v: str(v.quantize(FEN)), return_type=str)
_rate_out = PlainSerializer(lambda v: str(v.quantize(Decimal("0.0001"))), return_type=str)

# Any decimal string: commands whose business check answers with a reason code
# (purchase.requested, repayment.received) take this and judge the value themselves.
DecimalString = Annotated[
    Decimal, BeforeValidator(_decimal_from_wire), PlainSerializer(lambda v: str(v), return_type=str)
]
Money = Annotated[Decimal, BeforeValidator(lambda v: _non_negative(_two_decimals(_decimal_from_wire(v)))), _money_out]
SignedMoney = Annotated[Decimal, BeforeValidator(lambda v: _two_decimals(_decimal_from_wire(v))), _money_out]
PositiveMoney = Annotated[
    Decimal, BeforeValidator(lambda v: _positive(_two_decimals(_decimal_from_wire(v)))), _money_out
]
Rate = Annotated[Decimal, BeforeValidator(lambda v: _non_negative(_decimal_from_wire(v))), _rate_out]
BusinessDate = Annotated[date, AfterValidator(_in_calendar)]
Timestamp = Annotated[AwareDatetime, AfterValidator(_in_calendar)]
# An identifier an outside system chooses: not empty, and it fits the columns that keep it.
InboundId = Annotated[str, Field(min_length=1, max_length=ID_MAX)]
