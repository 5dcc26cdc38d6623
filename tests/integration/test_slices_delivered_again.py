"""A job whose every slice is delivered twice gives the calm run's summary and rows.

A worker killed after a slice's work committed but before its task was acknowledged has
the slice delivered again with the state it started from (and the slice may already have
queued its continuation). The work is idempotent, so a second run of it changes
nothing; what must also hold is the summary: the second delivery goes on from the
progress the first committed (``JobLease.resume``, ``shared/job_runs.py``), rather than
doing the same work again and counting nothing for it. Held here for every job that
works a date in units (statements, the daily close, collections-daily, plan-monitor's
offers and chunks): with units of one or two items, so that a run takes many slices, and
with the whole run in its first slice (delivered again, it finds its dates already done
by its own run: ``last_done(..., other_than=run)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from services.accounts import daily_close, statements
from services.collections import daily_strategy
from tests.support.customers import credit_line, purchase
from tests.support.service_driver import ServiceDriver

pytestmark = pytest.mark.integration

VARYING = ("duration_ms",)  # time taken: not a figure of the work


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in summary.items() if key not in VARYING}


def _payloads(driver: ServiceDriver) -> list[tuple[str, dict[str, Any]]]:
    return [
        (event["type"], {k: v for k, v in event["payload"].items() if k not in VARYING}) for event in driver.emitted()
    ]


def _twins(service: str) -> Iterator[tuple[ServiceDriver, ServiceDriver]]:
    """Two databases of one service: the calm run's and the run delivering every slice twice."""
    calm, again = ServiceDriver(service), ServiceDriver(service)
    yield calm, again
    calm.drop()
    again.drop()


@pytest.fixture()
def twin_accounts() -> Iterator[tuple[ServiceDriver, ServiceDriver]]:
    yield from _twins("accounts")


@pytest.fixture()
def twin_collections() -> Iterator[tuple[ServiceDriver, ServiceDriver]]:
    yield from _twins("collections")


@pytest.mark.parametrize("units", ["chunks of two accounts", "the whole job in one slice"])
def test_statements_and_closes_delivered_twice_count_each_chunk_once(
    twin_accounts: tuple[ServiceDriver, ServiceDriver], monkeypatch: pytest.MonkeyPatch, units: str
) -> None:
    if units == "chunks of two accounts":
        for job in (statements, daily_close):
            monkeypatch.setattr(job, "CHUNK_ACCOUNTS", 2)
            monkeypatch.setattr(job, "SLICE_SECONDS", 0.0)
    found = []
    for driver, deliveries in zip(twin_accounts, (1, 2)):
        for i in range(7):
            account = f"acc-twice-{i}"
            driver.send("credit.line.granted", credit_line(account, "5000.00", identity=f"identity-{i % 3}"))
            driver.send(
                "purchase.requested",
                purchase(account, f"{100 * (i + 1)}.00", "2026-02-14T15:00:00+08:00", purchase_id=f"pur-{i}"),
            )
        issued = driver.run_job("statements", date(2026, 3, 1), deliveries=deliveries)
        driver.run_job("daily-close", date(2026, 3, 10), deliveries=deliveries)
        closes = driver.run_job("daily-close", date(2026, 3, 14), deliveries=deliveries)  # four dates, caught up
        found.append((_figures(issued), _figures(closes), _payloads(driver)))
    (issued, closes, events), (issued_again, closes_again, events_again) = found
    assert issued["bills_issued"] == 7 and closes["dates_closed"] == [f"2026-03-{d}" for d in (11, 12, 13, 14)]
    assert closes["bills_overdue"] == 7 and closes["penalty_accrued"] != "0.00"
    assert (issued_again, closes_again) == (issued, closes)
    assert events_again == events


def _case(driver: ServiceDriver, account: str, due: date, day: date) -> None:
    """A credit line with one 1,000.00 bill, and what the accounts close of ``day`` says of it."""
    at = f"{day.isoformat()}T00:30:00+08:00"
    driver.send("credit.line.granted", credit_line(account, "5000.00"), occurred_at="2026-02-01T09:00:00+08:00")
    bill = {
        "bill_id": f"{account}-bill",
        "account_id": account,
        "statement_date": "2026-03-01",
        "due_date": due.isoformat(),
        "amount": "1000.00",
    }
    driver.send("bill.issued", bill, occurred_at="2026-03-01T00:10:00+08:00")
    dpd = (day - due).days
    owed = {"unpaid_principal": "1000.00", "penalty_interest": "0.00"}
    driver.send(
        "account.delinquency.updated",
        {
            "account_id": account,
            "business_date": day.isoformat(),
            "max_dpd": dpd,
            "overdue_principal": "1000.00",
            "penalty_interest": "0.00",
            "late_fees": "0.00",
            "total_overdue": "1000.00",
            "bills": [
                {"bill_id": bill["bill_id"], "due_date": due.isoformat(), "dpd": dpd, **owed, "late_fee": "0.00"}
            ],
        },
        occurred_at=at,
    )


@pytest.mark.parametrize("cases_per_slice", [1, daily_strategy.CASES_PER_SLICE])
def test_a_strategy_run_delivered_twice_counts_each_case_once(
    twin_collections: tuple[ServiceDriver, ServiceDriver], monkeypatch: pytest.MonkeyPatch, cases_per_slice: int
) -> None:
    monkeypatch.setattr(daily_strategy, "CASES_PER_SLICE", cases_per_slice)
    day = date(2026, 3, 20)
    found = []
    for driver, deliveries in zip(twin_collections, (1, 2)):
        for n, dpd in enumerate((1, 3, 8, 16, 35, -2)):  # every stage: SMS, calls, agency, pre-due
            _case(driver, f"case-{n}", day - timedelta(days=dpd), day)
        driver.at(f"{day.isoformat()}T08:00:00+08:00")
        summary = driver.run_job("collections-daily", day, deliveries=deliveries)
        found.append((summary, _payloads(driver)))
    (summary, events), (summary_again, events_again) = found
    assert summary["contacts_queued"] > 0 and summary["tasks_created"] > 0, summary
    assert summary_again == summary
    assert events_again == events
