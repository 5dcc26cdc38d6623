"""Values the command line takes: business dates, local times, amounts, dead-letter ids.

Each is a click ``ParamType``, so a bad value is a usage error (exit code 2, one line
naming the option) before the command touches a database or the broker.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

import click

from shared.money import MoneyError, parse_amount
from shared.settings import SERVICES


class BusinessDate(click.ParamType):
    """A real calendar date written YYYY-MM-DD (2026-02-30 and 2026-13-01 are refused)."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        text = str(value).strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            try:
                return date.fromisoformat(text)
            except ValueError:
                pass
        self.fail(f"{value!r} is not a date YYYY-MM-DD", param, ctx)


class LocalTime(click.ParamType):
    """A local time of day HH:MM, 00:00 to 23:59 (Asia/Shanghai); kept as the text."""

    name = "HH:MM"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        match = re.fullmatch(r"(\d{2}):(\d{2})", text)
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            self.fail(f"{value!r} is not a time HH:MM", param, ctx)
        return text


class Amount(click.ParamType):
    """A CNY amount as a Decimal with at most two decimals (never a float)."""

    name = "AMOUNT"

    def __init__(self, minimum: Decimal | None = Decimal("0")):
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Decimal:
        if isinstance(value, Decimal):
            amount = value
        else:
            try:
                amount = parse_amount(str(value))
            except MoneyError as exc:
                self.fail(str(exc), param, ctx)
        if self.minimum is not None and amount < self.minimum:
            self.fail(f"{value} is below {self.minimum}", param, ctx)
        return amount


class LetterId(click.ParamType):
    """A dead letter as ``dlq list`` names it: SERVICE:N."""

    name = "SERVICE:N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        service, _, number = str(value).partition(":")
        if service not in SERVICES or not number.isdigit():
            self.fail(
                f"{value!r} is not SERVICE:N (SERVICE one of {', '.join(SERVICES)}), as `baitiao dlq list` shows it",
                param,
                ctx,
            )
        return service, int(number)


BUSINESS_DATE = BusinessDate()
LOCAL_TIME = LocalTime()
AMOUNT = Amount()
LETTER_ID = LetterId()
