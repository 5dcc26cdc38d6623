"""RULES 2.8 in restructuring: while the account's delinquency is paused its plan's
monitoring holds; after the resume the held days do not count."""

from __future__ import annotations

from tests.integration.restructuring.conftest import Restructuring, at


def _pause(rs: Restructuring, account: str, on: str) -> None:
    payload = {
        "request_id": f"pause-{account}",
        "account_id": account,
        "reason": "bereavement",
        "paused_on": on,
        "until": None,
        "operator_id": "op-1",
    }
    rs.send("delinquency.paused", payload, at(on))


def _resume(rs: Restructuring, account: str, paused_on: str, on: str) -> None:
    payload = {
        "request_id": f"resume-{account}",
        "account_id": account,
        "pause_reason": "bereavement",
        "paused_on": paused_on,
        "resumed_on": on,
        "resumed_by": "operator",
        "operator_id": "op-2",
        "bills": [],
    }
    rs.send("delinquency.resumed", payload, at(on))


def test_a_paused_plan_is_not_monitored_and_the_held_days_do_not_count(rs: Restructuring) -> None:
    plan = rs.activate("acc-held", term=6)  # due 04-22, 05-22, ...
    _pause(rs, "acc-held", "2026-04-20")
    mark = rs.mark()
    rs.monitor("2026-04-23")
    rs.monitor("2026-05-23")  # two missed by the calendar: no overdue, no default while paused
    assert rs.emitted(mark) == []
    _resume(rs, "acc-held", "2026-04-20", "2026-05-30")  # 40 days held
    mark = rs.mark()
    rs.monitor("2026-06-01")  # judged as of 04-22: period 1 due that day, not overdue yet
    assert rs.emitted(mark) == []
    rs.monitor("2026-06-02")  # as of 04-23: period 1 one day overdue
    (overdue,) = rs.payloads(mark, "plan.installment.overdue")
    assert (overdue["plan_id"], overdue["period"], overdue["dpd"]) == (plan["plan_id"], 1, 1)
    assert rs.payloads(mark, "plan.defaulted") == []
