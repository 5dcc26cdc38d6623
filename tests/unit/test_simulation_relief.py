"""The simulation's relief mix (docs/simulation.md): disputers and the disaster-relief
pause act through the public events, and the invariant that nobody is contacted while
paused or disputed."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from baitiao.simulation.behaviour import (
    DEFAULT_MIX,
    DISPUTES_REJECTED,
    DISPUTES_UPHELD,
    RELIEF_DAY,
    Mix,
    Portfolio,
)
from baitiao.simulation.report import contacts_in_quiet_windows

START = date(2026, 1, 1)


def test_the_default_mix_has_disputers_and_still_adds_up() -> None:
    assert DEFAULT_MIX[DISPUTES_UPHELD] == DEFAULT_MIX[DISPUTES_REJECTED] == 0.02
    assert abs(sum(DEFAULT_MIX.values()) - 1.0) < 1e-9


def test_a_disputer_disputes_part_of_the_first_bill_pays_the_rest_and_is_resolved() -> None:
    portfolio = Portfolio(1, seed=3, mix=Mix({DISPUTES_UPHELD: 1.0}), start=START)
    (c,) = portfolio.customers
    bill = {"bill_id": "b-1", "account_id": c.account_id, "statement_date": "2026-02-01", "due_date": "2026-02-10"}
    portfolio.observe([{"type": "bill.issued", "payload": {**bill, "amount": "1000.00"}}])
    assert c.dispute is not None and c.dispute.amount == Decimal("300.00")
    events = []
    day = date(2026, 2, 1)
    while day <= c.dispute.resolve_on:
        events += portfolio.morning(day)
        day += timedelta(days=1)
    by_type = {e.type: e for e in events}
    assert by_type["dispute.opened"].payload["amount"] == "300.00"
    assert by_type["repayment.received"].payload["amount"] == "700.00"
    assert by_type["dispute.resolved"].payload["outcome"] == "upheld"


def test_a_share_of_the_portfolio_is_paused_for_disaster_relief_with_an_until() -> None:
    portfolio = Portfolio(200, seed=1, mix=Mix(dict(DEFAULT_MIX)), start=START)
    relief_day = START + timedelta(days=RELIEF_DAY)
    pauses = [e for e in portfolio.morning(relief_day) if e.type == "delinquency.pause.requested"]
    assert 0 < len(pauses) < 30
    assert {e.payload["reason"] for e in pauses} == {"disaster_relief"}
    assert all(e.payload["until"] > relief_day.isoformat() for e in pauses)


def test_a_contact_inside_a_pause_or_an_open_dispute_is_found() -> None:
    windows = [("a", date(2026, 2, 15), date(2026, 3, 16)), ("b", date(2026, 2, 3), date(2026, 2, 20))]
    contacts = [("a", date(2026, 2, 14)), ("a", date(2026, 3, 1)), ("b", date(2026, 2, 21)), ("c", date(2026, 3, 1))]
    assert contacts_in_quiet_windows(windows, contacts) == [("a", date(2026, 3, 1))]
