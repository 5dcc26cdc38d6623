"""A job slice waits out an outage of any length: it runs again from its state while the
database is away, hands the wait over to a later retry of its task past its budget, and
never counts an outage as a failure."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from shared.jobs import JobContext, JobResult, OutageOutlastsSlice, run_slice
from shared.transient import Backoff

QUICK = Backoff(0.001, 0.002)


def _ctx(state: dict[str, Any]) -> JobContext:
    return JobContext(
        service="accounts",
        job="daily-close",
        business_date=date(2026, 3, 12),
        at=None,
        engine=None,
        outbox=None,
        rules=None,
        clock=None,
        settings=None,
        state=dict(state),
    )


def _refused() -> OperationalError:
    return OperationalError("SELECT 1", {}, psycopg.OperationalError("connection failed: Connection refused"))


def test_a_slice_runs_again_for_as_long_as_the_database_is_away() -> None:
    seen: list[dict[str, Any]] = []

    def slice_(ctx: JobContext) -> JobResult:
        seen.append(dict(ctx.state))
        ctx.state["cursor"] = 99
        if len(seen) <= 40:  # far more tries than any message or slice is allowed for its own faults
            raise _refused()
        return JobResult({"status": "closed"})

    state = {"cursor": 3}
    ctx = _ctx(state)
    token = ctx.run
    assert run_slice(slice_, ctx, state, wait_s=60, backoff=QUICK).summary == {"status": "closed"}
    assert seen == [{"cursor": 3}] * 41  # every try from the state it was given
    assert ctx.run == token  # its lease token stays its own across the tries


def test_past_its_budget_a_slice_hands_the_outage_over_instead_of_failing_the_job() -> None:
    def slice_(ctx: JobContext) -> JobResult:
        raise _refused()

    with pytest.raises(OutageOutlastsSlice) as outlasted:
        run_slice(slice_, _ctx({}), {}, wait_s=0.05, backoff=QUICK)
    assert isinstance(outlasted.value.__cause__, OperationalError)


def test_a_slice_s_own_error_is_not_waited_out() -> None:
    calls: list[int] = []

    def slice_(ctx: JobContext) -> JobResult:
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        run_slice(slice_, _ctx({}), {}, wait_s=60, backoff=QUICK)
    assert calls == [1]
