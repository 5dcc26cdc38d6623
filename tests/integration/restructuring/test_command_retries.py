"""A retried request, acceptance or adjustment in the same batch as its original gets the
original's answer (the same type and payload, caused by the retry) and changes nothing."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from services.restructuring.models import Adjustment, OfferRequest, Plan
from shared.bus.handling import Delivery
from shared.events import new_envelope
from tests.integration.restructuring.conftest import Restructuring, at


def _batch(rs: Restructuring, commands: list[tuple[str, dict[str, Any]]], when: datetime) -> list[dict[str, Any]]:
    """Apply ``commands`` as one batch; returns their envelopes (each a new event id)."""
    rs.clock.set(when)
    envelopes = [
        new_envelope(
            t, payload, aggregate_id=payload.get("account_id") or payload["plan_id"], producer="test", occurred_at=when
        )
        for t, payload in commands
    ]
    outcome = rs.applier.apply_batch([Delivery(body=json.dumps(e).encode()) for e in envelopes])
    assert outcome.applied == len(envelopes) and not outcome.dead_lettered
    return envelopes


def _answers(rs: Restructuring, after: int, event_type: str) -> list[tuple[str, dict[str, Any]]]:
    """(causation id, payload) of every answer of a type written after the mark."""
    from services.restructuring.models import BUS

    query = (
        select(BUS.outbox.c.causation_id, BUS.outbox.c.payload)
        .where(BUS.outbox.c.id > after, BUS.outbox.c.type == event_type)
        .order_by(BUS.outbox.c.id)
    )
    with rs.engine.connect() as conn:
        return [(cause, json.loads(body)) for cause, body in conn.execute(query)]


def _count(rs: Restructuring, model: Any, **where: Any) -> int:
    with rs.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model).filter_by(**where))


def test_retries_in_the_batch_of_their_original_get_its_answer(rs: Restructuring) -> None:
    rs.overdue_account("acc-rty")
    request = {"request_id": "req-rty", "account_id": "acc-rty"}
    mark = rs.mark()
    first, retry = _batch(rs, [("plan.offers.requested", request)] * 2, at("2026-03-20"))
    (one, offered), (two, again) = _answers(rs, mark, "plan.offered")
    assert (one, two) == (first["event_id"], retry["event_id"]) and again == offered
    assert len(_answers(rs, mark, "risk.assessed")) == 1 and _count(rs, OfferRequest, request_id="req-rty") == 1

    offer = next(o for o in offered["offers"] if o["term"] == 6)
    acceptance = {"offer_id": offer["offer_id"], "account_id": "acc-rty", "accepted_at": at("2026-03-21").isoformat()}
    mark = rs.mark()
    first, retry = _batch(rs, [("plan.offer.accepted", acceptance)] * 2, at("2026-03-21"))
    (one, activated), (two, again) = _answers(rs, mark, "plan.activated")
    assert (one, two) == (first["event_id"], retry["event_id"]) and again == activated
    assert _answers(rs, mark, "plan.ineligible") == [] and _count(rs, Plan, account_id="acc-rty") == 1

    adjustment = {"request_id": "adj-rty", "plan_id": activated["plan_id"], "kind": "extend", "new_term": 9}
    mark = rs.mark()
    first, retry = _batch(
        rs,
        [("plan.adjustment.requested", adjustment), ("plan.adjustment.requested", {**adjustment, "new_term": 12})],
        at("2026-03-25"),
    )
    (one, adjusted), (two, again) = _answers(rs, mark, "plan.adjusted")
    assert (one, two) == (first["event_id"], retry["event_id"]) and again == adjusted
    assert len(adjusted["schedule"]) == 9  # the retry's other term is not looked at
    assert _count(rs, Adjustment, request_id="adj-rty") == 1


def test_an_unknown_offer_refusal_is_not_kept_for_the_offers_owner(rs: Restructuring) -> None:
    rs.overdue_account("acc-own")
    mark = rs.request_offers("acc-own", "req-own", at("2026-03-20"))
    offer = rs.offer(mark, 6)
    accepted = at("2026-03-21").isoformat()
    mark = rs.mark()
    rs.send(
        "plan.offer.accepted",
        {"offer_id": offer["offer_id"], "account_id": "acc-else", "accepted_at": accepted},
        at("2026-03-21"),
    )
    rs.send(
        "plan.offer.accepted",
        {"offer_id": offer["offer_id"], "account_id": "acc-own", "accepted_at": accepted},
        at("2026-03-21"),
    )
    assert [r["reason"] for r in rs.payloads(mark, "plan.ineligible")] == ["offer_unknown"]
    assert len(rs.payloads(mark, "plan.activated")) == 1
