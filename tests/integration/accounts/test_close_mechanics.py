"""The close as a job: sliced across tasks, chunked, leased, idempotent."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.accounts import daily_close as close_module
from services.accounts.job_lease import JobLease, LeaseHeld
from shared.clock import SHANGHAI
from shared.rules import OverdueRules, ProductRules
from tests.support.customers import credit_line, purchase
from tests.support.service_driver import ServiceDriver

pytestmark = pytest.mark.integration


@pytest.fixture()
def accounts():
    driver = ServiceDriver("accounts")
    yield driver
    driver.drop()


def test_a_close_split_into_many_chunks_and_slices_equals_one_pass(accounts, monkeypatch) -> None:
    for i in range(7):
        acc = f"acc-chunk-{i}"
        accounts.send("credit.line.granted", credit_line(acc, "5000.00"))
        accounts.send("purchase.requested", purchase(acc, f"{100 * (i + 1)}.00", "2026-02-14T15:00:00+08:00"))
    accounts.run_job("statements", date(2026, 3, 1))
    monkeypatch.setattr(close_module, "CHUNK_ACCOUNTS", 2)
    monkeypatch.setattr(close_module, "SLICE_SECONDS", 0.0)
    summary = accounts.run_job("daily-close", date(2026, 3, 14))
    assert summary["status"] == "closed"
    snapshots = [
        e["payload"]
        for e in accounts.emitted("account.delinquency.updated")
        if e["payload"]["business_date"] == "2026-03-14"
    ]
    assert len(snapshots) == 7
    # DPD 4 on the only close run for these bills: penalty 0.05% of each principal, late fee 1%.
    by_account = {s["account_id"]: s for s in snapshots}
    assert by_account["acc-chunk-6"]["penalty_interest"] == "0.35" and by_account["acc-chunk-6"]["late_fees"] == "7.00"


def test_two_closes_of_one_date_never_run_at_once(accounts) -> None:
    with Session(accounts.engine) as session, session.begin():
        JobLease("daily-close", "another-run").acquire(
            session, date(2026, 3, 5), datetime(2026, 3, 5, 0, 30, tzinfo=SHANGHAI)
        )
    accounts.at("2026-03-05T00:31:00+08:00")
    with pytest.raises(LeaseHeld):
        accounts.run_job("daily-close", date(2026, 3, 5))
    # Once the other run's lease is stale (its worker died), the date can be taken over.
    accounts.at("2026-03-05T01:00:00+08:00")
    assert accounts.run_job("daily-close", date(2026, 3, 5))["status"] == "closed"


@pytest.fixture(params=["postgresql", "sqlite"])
def accounts_on_each(request: pytest.FixtureRequest, tmp_path):
    """No arrears tolerance (rule 2.7): the snapshot's money of bills of a few fen is checked."""
    no_tolerance = ProductRules(overdue=OverdueRules(arrears_tolerance=Decimal("0")))
    driver = ServiceDriver(
        "accounts", rules=no_tolerance, sqlite_dir=str(tmp_path) if request.param == "sqlite" else None
    )
    yield driver
    driver.drop()


def test_the_snapshot_lists_every_overdue_bill_with_its_sums(accounts_on_each) -> None:
    """One ``account.delinquency.updated`` per delinquent account: its overdue bills by due
    date, each with its unpaid figures as the wire's decimal strings, and their sums (one
    implementation, on PostgreSQL and on SQLite)."""
    accounts = accounts_on_each
    amounts = ("1000.00", "333.33", "0.07")
    for i, amount in enumerate(amounts):
        acc = f"acc-snap-{i}"
        accounts.send("credit.line.granted", credit_line(acc, "5000.00"))
        accounts.send("purchase.requested", purchase(acc, amount, "2026-01-14T15:00:00+08:00"))
        accounts.send("purchase.requested", purchase(acc, amount, "2026-02-14T15:00:00+08:00"))
    accounts.run_job("statements", date(2026, 2, 1))
    accounts.run_job("statements", date(2026, 3, 1))
    accounts.run_job("daily-close", date(2026, 3, 14))
    emitted = sorted(
        (
            e["payload"]
            for e in accounts.emitted("account.delinquency.updated")
            if e["payload"]["business_date"] == "2026-03-14"
        ),
        key=lambda p: p["account_id"],
    )
    assert [p["account_id"] for p in emitted] == ["acc-snap-0", "acc-snap-1", "acc-snap-2"]

    def fen(money: str) -> int:
        assert re.fullmatch(r"\d+\.\d\d", money), money
        return int(money.replace(".", ""))

    for payload, amount in zip(emitted, amounts):
        bills = payload["bills"]
        assert [b["unpaid_principal"] for b in bills] == [amount, amount]
        assert [b["due_date"] for b in bills] == sorted(b["due_date"] for b in bills)
        assert payload["max_dpd"] == bills[0]["dpd"] > bills[1]["dpd"] > 0
        sums = {
            key: sum(fen(b[line]) for b in bills)
            for key, line in (
                ("overdue_principal", "unpaid_principal"),
                ("penalty_interest", "penalty_interest"),
                ("late_fees", "late_fee"),
            )
        }
        assert {key: fen(payload[key]) for key in sums} == sums
        assert fen(payload["total_overdue"]) == sum(sums.values())
    assert fen(emitted[0]["penalty_interest"]) > 0 and emitted[2]["bills"][1]["penalty_interest"] == "0.00"
    # each snapshot starts a chain: its own UUID, which is its correlation id too
    outbox = accounts.definition.bus.outbox
    with accounts.engine.connect() as conn:
        ids = conn.execute(
            select(outbox.c.event_id, outbox.c.correlation_id, outbox.c.occurred_at).where(
                outbox.c.type == "account.delinquency.updated"
            )
        ).all()
        assert len({event_id for event_id, _, _ in ids}) == len(ids) >= 3
        assert all(str(uuid.UUID(event_id)) == event_id == correlation for event_id, correlation, _ in ids)
        # stamped as every event of the close is (the same instant, stored the same way)
        closes = set(conn.scalars(select(outbox.c.occurred_at).where(outbox.c.type == "daily.close.completed")))
    assert {occurred for _, _, occurred in ids} <= closes


def test_a_bill_moved_into_a_plan_while_the_close_runs_is_charged_all_or_nothing(accounts) -> None:
    """A consumer transaction (a plan activation) holds the account and has moved its overdue
    bill into a plan when the next close starts; it commits while the close waits. The
    close must then see the bill in the plan: no accrual for the day, and never an accrual
    (with its ledger posting) that the bill itself does not show."""
    import threading

    from sqlalchemy import func, select, update

    from services.accounts.models import Account, Bill, DailyAccrual

    accounts.send("credit.line.granted", credit_line("acc-race", "5000.00"))
    accounts.send("purchase.requested", purchase("acc-race", "1000.00", "2026-02-14T15:00:00+08:00"))
    accounts.run_job("statements", date(2026, 3, 1))
    accounts.run_job("daily-close", date(2026, 3, 11))  # DPD 1: the bill is charged
    with Session(accounts.engine) as consumer:
        consumer.begin()
        account = consumer.scalar(select(Account).where(Account.account_id == "acc-race").with_for_update())
        consumer.execute(
            update(Bill)
            .where(Bill.account_pk == account.pk)
            .values(plan_id="plan-race", unpaid_principal_fen=0, unpaid_penalty_fen=0, unpaid_late_fee_fen=0)
        )
        done: list[dict] = []
        close = threading.Thread(target=lambda: done.append(accounts.run_job("daily-close", date(2026, 3, 12))))
        close.start()
        close.join(timeout=2.0)
        assert close.is_alive()  # it waits for the account the consumer holds
        consumer.commit()
    close.join(timeout=60)
    assert done and done[0]["status"] == "closed"
    with Session(accounts.engine) as session:
        bill = session.scalar(
            select(Bill).join(Account, Account.pk == Bill.account_pk).where(Account.account_id == "acc-race")
        )
        accrued = session.scalar(
            select(func.coalesce(func.sum(DailyAccrual.penalty_fen), 0)).where(DailyAccrual.bill_pk == bill.pk)
        )
        days = session.scalars(select(DailyAccrual.business_date).where(DailyAccrual.bill_pk == bill.pk)).all()
    assert days == [date(2026, 3, 11)]
    assert accrued == bill.penalty_charged_fen > 0
