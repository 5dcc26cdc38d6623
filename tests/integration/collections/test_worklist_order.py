"""Today's worklist (services.collections.worklist) on PostgreSQL and on the embedded
SQLite: every page is the rows of the whole order, against an oracle sort in Python, for
every task and for one collector's accounts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from services.collections.models import CollectorTask, Customer, PromiseToPay
from services.collections.worklist import WorklistEntry, open_task_count, open_tasks
from tests.support.service_driver import ServiceDriver

pytestmark = pytest.mark.integration
TODAY = date(2026, 3, 20)


@pytest.fixture(params=["postgresql", "sqlite"])
def collections(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServiceDriver]:
    driver = ServiceDriver("collections", sqlite_dir=str(tmp_path) if request.param == "sqlite" else None)
    yield driver
    driver.drop()


def _seed(driver: ServiceDriver, rng: random.Random) -> None:
    """Tasks with many ties in DPD and amount, some done, some accounts with promises."""
    with Session(driver.engine) as session:
        for n in range(300):
            account = f"acc-{n % 120}"
            session.add(
                CollectorTask(
                    task_id=f"task-{rng.randrange(10**6):06d}-{n}",
                    account_id=account,
                    kind=rng.choice(["call", "agency", "legal"]),
                    stage="M1",
                    dpd=rng.choice([31, 45, 61, 91]),
                    amount_fen=rng.choice([100_00, 250_00, 999_99]),
                    trigger="stage_entered",
                    created_on=TODAY - timedelta(days=n % 7),
                    due_by=TODAY,
                    status="open" if n % 5 else "done",
                )
            )
        for n in range(0, 120, 3):
            status = "pending" if n % 2 else "kept"
            for days in (rng.randrange(1, 8), rng.randrange(1, 8)):
                session.add(
                    PromiseToPay(
                        account_id=f"acc-{n}",
                        recorded_on=TODAY,
                        promised_date=TODAY + timedelta(days=days),
                        pause_until=TODAY + timedelta(days=days),
                        status=status,
                    )
                )
        for n in range(0, 120, 2):
            session.add(
                Customer(
                    account_id=f"acc-{n}", customer_id=f"cus-{n}", name="张三", phone="13800138000", opened_on=TODAY
                )
            )
        session.commit()


def _oracle(driver: ServiceDriver, accounts: set[str] | None) -> list[str]:
    """The rule written out: DPD, amount, earliest pending promise (none last), task id."""
    with Session(driver.engine) as session:
        promises: dict[str, date] = {}
        for p in session.query(PromiseToPay).filter(PromiseToPay.status == "pending"):
            promises[p.account_id] = min(p.promised_date, promises.get(p.account_id, date.max))
        tasks = [
            t
            for t in session.query(CollectorTask).filter(CollectorTask.status == "open")
            if accounts is None or t.account_id in accounts
        ]
    tasks.sort(key=lambda t: (-t.dpd, -t.amount_fen, promises.get(t.account_id, date.max), t.task_id))
    return [t.task_id for t in tasks]


def _paged(driver: ServiceDriver, accounts: list[str] | None, size: int) -> list[WorklistEntry]:
    entries: list[WorklistEntry] = []
    with Session(driver.engine) as session:
        while page := open_tasks(session, accounts, limit=size, offset=len(entries)):
            entries += page
    return entries


def test_every_page_is_rows_of_the_whole_order(collections: ServiceDriver) -> None:
    _seed(collections, random.Random(7))
    mine = sorted(f"acc-{n}" for n in range(0, 120, 7))
    for accounts in (None, mine):
        expected = _oracle(collections, set(accounts) if accounts is not None else None)
        assert [e.task_id for e in _paged(collections, accounts, size=13)] == expected
        with Session(collections.engine) as session:
            assert open_task_count(session, accounts) == len(expected)
            assert [e.task_id for e in open_tasks(session, accounts)] == expected
    with Session(collections.engine) as session:
        assert open_tasks(session, []) == [] and open_task_count(session, []) == 0
        entries = open_tasks(session)
    promised = [e for e in entries if e.promise_due is not None]
    assert promised and all(int(e.account_id.split("-")[1]) % 6 == 3 for e in promised)  # pending ones only
    assert {e.name for e in entries} == {"张三", None}
