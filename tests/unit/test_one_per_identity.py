"""The simulation's waves under several workers per service: each identity's n-th event in wave n."""

from __future__ import annotations

from baitiao.simulation.driver import one_per_identity
from baitiao.simulation.wire import OutgoingEvent


def _event(account: str, n: int, aggregate: str | None = None) -> OutgoingEvent:
    return OutgoingEvent(
        "purchase.requested", aggregate or account, {"account_id": account, "n": n}, f"2026-01-01T10:0{n}:00+08:00"
    )


def test_each_identitys_events_go_one_a_wave_in_their_order() -> None:
    identity_of = {"a1": "alice", "a2": "alice", "b1": "bob"}
    events = [_event("a1", 0), _event("b1", 1), _event("a2", 2), _event("a1", 3), _event("b1", 4), _event("c1", 5)]
    waves = one_per_identity(events, identity_of)
    assert [[(e.payload["account_id"], e.payload["n"]) for e in wave] for wave in waves] == [
        [("a1", 0), ("b1", 1), ("c1", 5)],
        [("a2", 2), ("b1", 4)],
        [("a1", 3)],
    ]
    assert sorted(e.payload["n"] for wave in waves for e in wave) == list(range(6))  # nothing lost or doubled


def test_an_event_without_an_account_is_keyed_by_its_aggregate() -> None:
    events = [
        _event("x", 0),
        OutgoingEvent("dispute.resolved", "d-1", {}, "t"),
        OutgoingEvent("dispute.resolved", "d-1", {}, "t"),
    ]
    assert [len(wave) for wave in one_per_identity(events, {})] == [2, 1]
