"""A job slice that lost a deadlock (or another conflict PostgreSQL settles by rolling one
side back) runs once more from the state it was given; any other database error stands."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from shared.jobs import JobContext, JobResult, run_slice


class _PgError(Exception):
    def __init__(self, sqlstate: str):
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


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


def _failing_once(sqlstate: str) -> tuple[Any, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def slice_(ctx: JobContext) -> JobResult:
        seen.append(dict(ctx.state))
        ctx.state["cursor"] = 99  # what the failed try had got to
        if len(seen) == 1:
            raise DBAPIError("UPDATE bills ...", {}, _PgError(sqlstate))
        return JobResult({"status": "closed"})

    return slice_, seen


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])  # deadlock detected, serialization failure
def test_a_lost_conflict_runs_the_slice_again_from_its_state(sqlstate: str) -> None:
    slice_, seen = _failing_once(sqlstate)
    state = {"cursor": 0}
    assert run_slice(slice_, _ctx(state), state).summary == {"status": "closed"}
    assert seen == [{"cursor": 0}, {"cursor": 0}]


def test_another_database_error_is_not_retried() -> None:
    slice_, seen = _failing_once("23505")  # unique violation: a bug, not a conflict
    with pytest.raises(DBAPIError):
        run_slice(slice_, _ctx({"cursor": 0}), {"cursor": 0})
    assert len(seen) == 1
