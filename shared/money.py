"""Money: ``Decimal`` in code, integer fen in the database, decimal strings on the wire.

Rounding is half-up to the fen and happens only where a rule says so (RULES.md):
intermediate products stay exact.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

FEN = Decimal("0.01")
ZERO = Decimal("0.00")


class MoneyError(ValueError):
    """An amount that is not a valid CNY amount (not a number, too many decimals...)."""


def round_fen(value: Decimal) -> Decimal:
    """Round half-up to the fen (0.01), the only rounding the rulebook allows."""
    return value.quantize(FEN, rounding=ROUND_HALF_UP)


def to_fen(amount: Decimal) -> int:
    """Exact conversion of an amount already at fen precision into integer fen.

    Raises MoneyError rather than silently rounding: a caller that has sub-fen
    precision must decide where to round with :func:`round_fen` first.
    """
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise MoneyError(f"{amount} has more than two decimals")
    return int(cents)


def from_fen(fen: int) -> Decimal:
    """Integer fen from the database into a Decimal amount with two decimals."""
    return (Decimal(int(fen)) / 100).quantize(FEN)


def parse_amount(text: str | int | Decimal) -> Decimal:
    """Parse a wire amount strictly: a decimal with at most two decimals.

    Floats are refused outright: a float has already lost the fen.
    """
    if isinstance(text, float) or isinstance(text, bool):
        raise MoneyError("amounts travel as decimal strings, not floats")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation as exc:
        raise MoneyError(f"{text!r} is not a decimal amount") from exc
    if not value.is_finite():
        raise MoneyError(f"{text!r} is not a finite amount")
    exponent = value.as_tuple().exponent  # an int: the value is finite
    if isinstance(exponent, int) and exponent < -2 and value != value.quantize(FEN):
        raise MoneyError(f"{text!r} has more than two decimals")
    return value.quantize(FEN)


def wire(amount: Decimal) -> str:
    """The wire form of an amount: a decimal string with exactly two decimals."""
    return str(amount.quantize(FEN))


def fen_str(fen: int) -> str:
    """Integer fen straight to the wire's decimal string (the bulk jobs' fast path)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole}.{cents:02d}"
