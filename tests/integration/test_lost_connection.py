"""After the database drops its connections (a restart, a failover), nothing is lost.

The engines do not ping a pooled connection before each use (shared/db.py): the first
statement on a dead one fails, SQLAlchemy drops the pool, and the caller tries again on a
fresh connection. Held here on a real PostgreSQL whose backends are terminated under a
warm pool: an event batch fails as a transient fault (the consumer retries it whole) and
then applies; a job slice runs once more from the state it was given, and succeeds.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from services.collections.registry import HANDLERS
from services.collections.models import BUS
from shared.bus.handling import Delivery, is_transient
from shared.bus.outbox import Outbox
from shared.clock import FixedClock, SHANGHAI
from shared.jobs import JobContext, JobResult, run_slice
from shared.rules import ProductRules
from shared.settings import Settings
from tests.support.batch_equivalence import Databases, Service, bodies, databases_fixture
from tests.support.system import PG_BASE

pytestmark = pytest.mark.integration

COLLECTIONS = Service("collections")
databases = databases_fixture("collections", kinds=("postgresql",))


def _terminate_backends(engine: Engine) -> int:
    """What a database restart does to the pool's connections."""
    admin = create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :name"),
            {"name": engine.url.database},
        ).scalar()
    admin.dispose()
    return int(killed or 0)


def _grant(account: str) -> tuple[str, dict[str, Any]]:
    return "credit.line.granted", {
        "account_id": account,
        "customer_id": f"c-{account}",
        "identity_hash": "h" * 16,
        "credit_limit": "5000.00",
        "name": "张三",
        "phone": "13800005678",
        "opened_on": "2026-01-01",
    }


def _warm(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def test_a_batch_on_a_dead_connection_fails_as_transient_then_applies(databases: Databases) -> None:
    engine = databases()
    wire = bodies([_grant("A"), _grant("B")], datetime(2026, 1, 1, 9, tzinfo=SHANGHAI))
    applier = COLLECTIONS.applier(engine, HANDLERS)
    _warm(engine)
    assert _terminate_backends(engine) >= 1
    with pytest.raises(Exception) as lost:
        applier.apply_batch([Delivery(body=b) for b in wire])
    assert is_transient(lost.value)  # the consumer keeps the batch and retries it whole
    outcome = applier.apply_batch([Delivery(body=b) for b in wire])
    assert outcome.applied == 2 and not outcome.retry and not outcome.dead_lettered
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM customers")).scalar() == 2


def test_a_job_slice_on_a_dead_connection_runs_again_from_its_state(databases: Databases, tmp_path: Path) -> None:
    engine = databases()
    attempts: list[dict[str, Any]] = []

    def slice_(ctx: JobContext) -> JobResult:
        attempts.append({"cursor": ctx.state["cursor"], "seen": list(ctx.state["seen"])})
        ctx.state["seen"].append("touched")  # a slice may change its state as it goes
        with engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM outbox")).scalar()
        return JobResult({"outbox": count})

    state = {"cursor": 7, "seen": []}
    ctx = JobContext(
        service="collections",
        job="collections-daily",
        business_date=date(2026, 3, 2),
        at=None,
        engine=engine,
        outbox=Outbox(BUS.outbox),
        rules=ProductRules(),
        clock=FixedClock(),
        settings=Settings(data_dir=tmp_path),
        state={"cursor": 7, "seen": []},
    )
    _warm(engine)
    assert _terminate_backends(engine) >= 1
    assert run_slice(slice_, ctx, state).summary == {"outbox": 0}
    assert attempts == [{"cursor": 7, "seen": []}, {"cursor": 7, "seen": []}]  # the second from the given state


def test_a_slice_that_fails_for_another_reason_is_not_run_again(databases: Databases, tmp_path: Path) -> None:
    engine = databases()
    calls: list[int] = []

    def slice_(ctx: JobContext) -> JobResult:
        calls.append(1)
        with engine.connect() as conn:
            conn.execute(text("SELECT no_such_column FROM outbox"))
        return JobResult({})

    ctx = JobContext(
        service="collections",
        job="collections-daily",
        business_date=date(2026, 3, 2),
        at=None,
        engine=engine,
        outbox=Outbox(BUS.outbox),
        rules=ProductRules(),
        clock=FixedClock(),
        settings=Settings(data_dir=tmp_path),
    )
    with pytest.raises(DBAPIError):
        run_slice(slice_, ctx, {})
    assert calls == [1]
