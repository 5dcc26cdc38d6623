"""A command retried under a new ``event_id`` (a gateway that heard nothing back) gets the
first answer again and has no second effect; the month's KPI cohort counts a case that
went overdue and was cured within it. Seen from outside: plain kombu and the CLI, real
workers on real Redis and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.conftest import System, start_system, stop_system
from tests.support.customers import credit_line, new_id, purchase, repayment
from tests.support.system import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def retries(redis_db: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = start_system(redis_db + 12, tmp_path_factory.mktemp("retries"))
    yield running
    stop_system(running)


def _job(system: System, name: str, day: date) -> None:
    done = run_cli(["jobs", "run", name, "--date", day.isoformat()], system.env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _shown(system: System, account: str) -> dict[str, Any]:
    done = run_cli(["account", "show", account, "--json"], system.env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _answers(system: System, event_type: str, key: str, value: str, count: int) -> list[dict[str, Any]]:
    """Wait for ``count`` answers of a type to one business id; a moment more, then all seen."""
    system.outside.wait_for(event_type, lambda p: p.get(key) == value, count=count)
    system.outside.pump(1.5)  # a third answer would show up here
    return system.outside.events(event_type, lambda p: p.get(key) == value)


def _assert_repeated(answers: list[dict[str, Any]], retry: dict[str, Any]) -> None:
    """Two answers: the same payload, the second a new event caused by the retry."""
    first, again = answers
    assert again["payload"] == first["payload"]
    assert again["event_id"] != first["event_id"]
    assert again["causation_id"] == retry["event_id"]


def _retry(system: System, original: dict[str, Any]) -> dict[str, Any]:
    """The same command sent again under a new event id."""
    return system.outside.publish(
        original["type"],
        original["payload"],
        original["aggregate_id"],
        event_id=str(uuid.uuid4()),
        occurred_at=original["occurred_at"],
    )


def _sql(system: System, service: str, query: str, **params: Any) -> Any:
    engine = create_engine(system.databases.url(service))
    try:
        with engine.connect() as conn:
            return conn.execute(text(query), params).scalar()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def billed(retries: System) -> dict[str, str]:
    """Three accounts with a 3,000.00 purchase in February, billed on 03-01 (due 03-10)."""
    out = retries.outside
    accounts = {name: new_id("acc") for name in ("repay", "buy", "plan")}
    for account in accounts.values():
        out.publish(
            "credit.line.granted", credit_line(account, "5000.00", opened_on="2023-01-01", income="20000.00"), account
        )
    for account in accounts.values():
        out.wait_for("credit.line.opened", lambda p, a=account: p.get("account_id") == a)
        out.publish("purchase.requested", purchase(account, "3000.00", "2026-02-14T15:00:00+08:00"), account)
        out.wait_for("purchase.approved", lambda p, a=account: p.get("account_id") == a)
    _job(retries, "statements", date(2026, 3, 1))
    for account in accounts.values():
        out.wait_for("bill.issued", lambda p, a=account: p.get("account_id") == a)
    return accounts


def test_a_retried_repayment_gets_the_same_applied_answer_and_moves_the_balance_once(retries, billed) -> None:
    out, account = retries.outside, billed["repay"]
    payment = repayment(account, "500.00", "2026-03-05T12:00:00+08:00")
    original = out.publish("repayment.received", payment, account, occurred_at="2026-03-05T12:00:00+08:00")
    out.wait_for("repayment.applied", lambda p: p.get("payment_id") == payment["payment_id"])
    retry = _retry(retries, original)
    answers = _answers(retries, "repayment.applied", "payment_id", payment["payment_id"], 2)
    assert len(answers) == 2
    _assert_repeated(answers, retry)
    assert answers[0]["payload"]["allocations"][-1]["amount"] == "500.00"
    assert _shown(retries, account)["unpaid_principal"] == "2500.00"
    # the consumers of repayment.applied count the payment once too
    bill = answers[0]["payload"]["allocations"][-1]["target_id"]
    assert _sql(retries, "collections", "SELECT unpaid_fen FROM bills WHERE bill_id = :b", b=bill) == 250000
    assert (
        _sql(retries, "restructuring", "SELECT unpaid_principal_fen FROM bill_views WHERE bill_id = :b", b=bill)
        == 250000
    )


def test_a_retried_purchase_gets_the_same_decision_and_uses_the_limit_once(retries, billed) -> None:
    """Between the first answers and the retries a payment frees 2,000.00 of the limit:
    decided again, the declined purchase would now pass, and the approval would name
    another available limit."""
    out, account = retries.outside, billed["buy"]
    approved = purchase(account, "1000.00", "2026-03-02T10:00:00+08:00")
    declined = purchase(account, "2500.00", "2026-03-02T10:05:00+08:00")
    firsts = [
        out.publish("purchase.requested", approved, account),
        out.publish("purchase.requested", declined, account),
    ]
    out.wait_for("purchase.approved", lambda p: p.get("purchase_id") == approved["purchase_id"])
    out.wait_for("purchase.declined", lambda p: p.get("purchase_id") == declined["purchase_id"])
    payment = repayment(account, "2000.00", "2026-03-03T12:00:00+08:00")
    out.publish("repayment.received", payment, account, occurred_at="2026-03-03T12:00:00+08:00")
    out.wait_for("repayment.applied", lambda p: p.get("payment_id") == payment["payment_id"])
    retries_sent = [_retry(retries, first) for first in firsts]
    answers = _answers(retries, "purchase.approved", "purchase_id", approved["purchase_id"], 2)
    assert len(answers) == 2 and answers[0]["payload"]["available_limit"] == "1000.00"
    _assert_repeated(answers, retries_sent[0])
    refusals = _answers(retries, "purchase.declined", "purchase_id", declined["purchase_id"], 2)
    assert len(refusals) == 2 and refusals[0]["payload"]["reason"] == "insufficient_limit"
    _assert_repeated(refusals, retries_sent[1])
    assert not out.events("purchase.approved", lambda p: p.get("purchase_id") == declined["purchase_id"])
    view = _shown(retries, account)
    assert (view["unpaid_principal"], view["available"]) == ("2000.00", "3000.00")


def test_a_retry_in_the_same_batch_as_its_original_gets_the_original_answer(retries, billed) -> None:
    """The accounts worker is down while both arrive: it takes them in one batch."""
    out, account = retries.outside, billed["buy"]
    payment = repayment(account, "100.00", "2026-03-06T12:00:00+08:00")
    retries.workers.kill("accounts")
    try:
        original = out.publish("repayment.received", payment, account, occurred_at="2026-03-06T12:00:00+08:00")
        retry = _retry(retries, original)
    finally:
        retries.workers.start("accounts")
    answers = _answers(retries, "repayment.applied", "payment_id", payment["payment_id"], 2)
    assert len(answers) == 2
    _assert_repeated(answers, retry)
    assert _shown(retries, account)["unpaid_principal"] == "1900.00"


def test_a_retried_offers_request_and_acceptance_get_their_first_answers(retries, billed) -> None:
    out, account = retries.outside, billed["plan"]
    mine = lambda p: p.get("account_id") == account  # noqa: E731
    _job(retries, "daily-close", date(2026, 3, 10))
    _job(retries, "daily-close", date(2026, 3, 20))  # DPD 10
    out.wait_for("account.delinquency.updated", lambda p: mine(p) and p["max_dpd"] == 10)
    out.pump(1.0)
    request = new_id("req")
    asked = out.publish(
        "plan.offers.requested",
        {"request_id": request, "account_id": account},
        account,
        occurred_at="2026-03-20T10:00:00+08:00",
    )
    out.wait_for("plan.offered", lambda p: p.get("request_id") == request)
    asked_again = _retry(retries, asked)
    offered = _answers(retries, "plan.offered", "request_id", request, 2)
    assert len(offered) == 2
    _assert_repeated(offered, asked_again)
    assert not out.events("plan.ineligible", lambda p: p.get("request_id") == request)

    offer = next(o for o in offered[0]["payload"]["offers"] if o["term"] == 6)
    accepted = out.publish(
        "plan.offer.accepted",
        {"offer_id": offer["offer_id"], "account_id": account, "accepted_at": "2026-03-20T11:00:00+08:00"},
        account,
        occurred_at="2026-03-20T11:00:00+08:00",
    )
    out.wait_for("plan.activated", lambda p: p.get("offer_id") == offer["offer_id"])
    accepted_again = _retry(retries, accepted)
    activated = _answers(retries, "plan.activated", "offer_id", offer["offer_id"], 2)
    assert len(activated) == 2
    _assert_repeated(activated, accepted_again)
    assert not out.events("plan.ineligible", lambda p: p.get("request_id") == offer["offer_id"])
    # one plan, one restructured case
    assert _sql(retries, "restructuring", "SELECT count(*) FROM plans WHERE account_id = :a", a=account) == 1
    assert len(out.events("collection.case.closed", lambda p: mine(p) and p["reason"] == "restructured")) == 1


def test_a_case_overdue_and_cured_within_the_month_counts_in_its_cohort_as_cured(retries, billed) -> None:
    """May: only this account has a bill (April's purchase); it goes overdue on 05-11 and
    is cured on 05-15."""
    out, account = retries.outside, new_id("acc")
    mine = lambda p: p.get("account_id") == account  # noqa: E731
    out.publish("credit.line.granted", credit_line(account, "5000.00", opened_on="2023-01-01"), account)
    out.wait_for("credit.line.opened", mine)
    out.publish("purchase.requested", purchase(account, "800.00", "2026-04-14T15:00:00+08:00"), account)
    out.wait_for("purchase.approved", mine)
    _job(retries, "statements", date(2026, 5, 1))
    out.wait_for("bill.issued", mine)
    _job(retries, "daily-close", date(2026, 5, 11))
    out.wait_for("bill.overdue", mine)
    out.publish(
        "repayment.received",
        repayment(account, "830.00", "2026-05-15T12:00:00+08:00"),
        account,
        occurred_at="2026-05-15T12:00:00+08:00",
    )
    out.wait_for("collection.case.closed", lambda p: mine(p) and p["reason"] == "cured")

    done = run_cli(
        ["collections", "kpis", "--from", "2026-05-01", "--to", "2026-05-31", "--json"], retries.env, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    cohort = json.loads(done.stdout)["cohort"]
    assert cohort["cases"] == 1
    assert cohort["outcomes"]["cured"] == 1
    assert cohort["cure_rate"] == {"numerator": 1, "denominator": 1, "value": "1.0000"}
    shown = run_cli(["collections", "kpis", "--from", "2026-05-01", "--to", "2026-05-31"], retries.env, timeout=60)
    assert "cure rate" in shown.stdout and "cases opened" in shown.stdout
