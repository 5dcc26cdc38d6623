"""plan-monitor with every slice delivered twice counts each plan and offer once.

A worker killed after a slice's work committed but before its task was acknowledged has
the slice delivered again with the state it started from; it goes on from the progress
the first delivery committed (``JobLease.resume``), so the run's figures are the work's.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.restructuring import jobs
from services.restructuring.models import OfferRow

from .conftest import Restructuring, at

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("chunks", ["one plan a slice", "the whole run in one slice"])
def test_each_plan_and_offer_is_counted_once_when_every_slice_is_delivered_twice(
    rs: Restructuring, monkeypatch: pytest.MonkeyPatch, chunks: str
) -> None:
    """The module's database is shared: each case has accounts of its own and counts only
    the offers it expires."""
    prefix = "a" if chunks == "one plan a slice" else "b"
    plans = [rs.activate(f"acc-twice-{prefix}{n}", term=6) for n in range(3)]  # all due 04-22, none paid
    for n in range(2):  # offers never taken up, their validity long over by 04-23
        rs.overdue_account(f"acc-offered-{prefix}{n}")
        rs.request_offers(f"acc-offered-{prefix}{n}", f"req-offered-{prefix}{n}", at("2026-03-20"))
    if chunks == "one plan a slice":
        monkeypatch.setattr(jobs, "CHUNK", 1)
        monkeypatch.setattr(jobs, "CHUNKS_PER_SLICE", 1)
    with rs.engine.connect() as conn:
        expired_before = conn.scalar(select(func.count()).select_from(OfferRow).where(OfferRow.status == "expired"))
    mark = rs.mark()
    summary = rs.monitor("2026-04-23", deliveries=2).summary
    overdue = rs.payloads(mark, "plan.installment.overdue")
    assert sorted(event["plan_id"] for event in overdue) == sorted(plan["plan_id"] for plan in plans)
    with rs.engine.connect() as conn:
        expired = conn.scalar(select(func.count()).select_from(OfferRow).where(OfferRow.status == "expired"))
        expired -= expired_before
    assert expired and summary == {
        "overdue": 3,
        "defaulted": 0,
        "expired_offers": expired,
        "dates_run": ["2026-04-23"],
    }
