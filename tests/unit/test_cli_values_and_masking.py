"""The command line's value types, and the masking of what ``dlq`` shows of a letter."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import click
import pytest

from baitiao.commands.errors import explain, one_line
from baitiao.commands.values import AMOUNT, BUSINESS_DATE, LETTER_ID, LOCAL_TIME
from shared.bus.dead_letters import DeadLetter, mask_tree, masked_view


@pytest.mark.parametrize("text", ["2026-02-30", "2026-13-01", "20260301", "2026-3-1", "tomorrow", ""])
def test_business_dates_that_are_not_real_dates(text: str) -> None:
    with pytest.raises(click.BadParameter):
        BUSINESS_DATE.convert(text, None, None)


def test_a_business_date() -> None:
    assert BUSINESS_DATE.convert("2028-02-29", None, None) == date(2028, 2, 29)


@pytest.mark.parametrize("text", ["24:00", "9:30", "09:60", "0930", "noon"])
def test_local_times_that_are_not_hh_mm(text: str) -> None:
    with pytest.raises(click.BadParameter):
        LOCAL_TIME.convert(text, None, None)


def test_amounts_are_decimals_of_at_most_two_places() -> None:
    assert AMOUNT.convert("8000", None, None) == Decimal("8000.00")
    for bad in ("abc", "1.001", "-5", "NaN", "Infinity"):
        with pytest.raises(click.BadParameter):
            AMOUNT.convert(bad, None, None)


def test_letter_ids() -> None:
    assert LETTER_ID.convert("collections:12", None, None) == ("collections", 12)
    for bad in ("accounts", "accounts:", "accounts:x", "nobody:1", "accounts:-1"):
        with pytest.raises(click.BadParameter):
            LETTER_ID.convert(bad, None, None)


def test_masking_reaches_every_depth_of_a_body() -> None:
    body = {
        "payload": {
            "name": "欧阳娜娜",
            "phone": "13912345678",
            "identity_hash": "abc",
            "contacts": [{"mobile": "13700001111"}, "call 13600002222"],
            "amount": "10.00",
        }
    }
    masked = mask_tree(body)
    assert masked["payload"]["name"] == "欧***"
    assert masked["payload"]["phone"] == "139****5678"
    assert masked["payload"]["identity_hash"] == "***"
    assert masked["payload"]["contacts"] == [{"mobile": "137****1111"}, "call 136****2222"]
    assert masked["payload"]["amount"] == "10.00"


def test_a_body_that_is_not_json_is_masked_as_text() -> None:
    letter = DeadLetter(
        id=1,
        queue="accounts.events",
        event_id=None,
        type=None,
        reason="not_json: 13812345678",
        body="{broken phone=13812345678",
        attempts=1,
        created_at=datetime(2026, 3, 1, tzinfo=timezone.utc),
        replayed_at=None,
    )
    view = masked_view(letter)
    assert "13812345678" not in json.dumps(view, default=str)
    assert view["state"] == "open" and view["body"] == "{broken phone=138****5678"


def test_explanations_are_one_line() -> None:
    assert one_line("first\n\n  second") == "first"
    assert "\n" not in explain(RuntimeError("a\nb"))
    assert explain(LookupError("no dead letter 9")) == "no dead letter 9"
