"""How the contract answers a command whose payload it refuses.

Every inbound command has a rejection type (``repayment.received`` ->
``repayment.rejected``, ...) and one service that answers it. A command whose envelope
can be read but whose payload fails validation is answered with that rejection, reason
``invalid_payload`` and the field errors, as long as its business id (the field the
sender matches the answer by) is a non-empty string: otherwise the sender could not
tell what the answer is about, and the message only goes to the dead letters.

The errors are pydantic's: where (a dotted ``loc``) and why (``msg``), never the value
sent, which may be personal data (an identity hash, a phone, an income).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

INVALID_PAYLOAD = "invalid_payload"
# At most this many field errors travel in one rejection.
MAX_ERRORS = 20


@dataclass(frozen=True)
class Rejection:
    """One command's answer to an invalid payload.

    ``fields`` maps the reply's fields to the command's, business id first: the business
    id is copied whenever it is a non-empty string, every other field only when the
    command's value of it passed validation (else the reply carries null).
    """

    command: str
    reply: str
    answered_by: str
    fields: tuple[tuple[str, str], ...]

    @property
    def business_id(self) -> str:
        """The command's field the sender matches the answer by."""
        return self.fields[0][1]

    def reply_payload(self, payload: Mapping[str, Any], errors: list[dict[str, str]]) -> dict[str, Any] | None:
        """The rejection's payload for a command's raw ``payload``; None when its business id
        cannot be read."""
        business_id = payload.get(self.business_id)
        if not isinstance(business_id, str) or not business_id:
            return None
        refused = {error["loc"].split(".")[0] for error in errors}
        reply: dict[str, Any] = {self.fields[0][0]: business_id}
        for reply_field, command_field in self.fields[1:]:
            ok = command_field not in refused and payload.get(command_field) is not None
            reply[reply_field] = payload[command_field] if ok else None
        return {**reply, "reason": INVALID_PAYLOAD, "errors": errors}


REJECTIONS: dict[str, Rejection] = {
    r.command: r
    for r in (
        Rejection("credit.line.granted", "credit.line.rejected", "accounts", (("account_id", "account_id"),)),
        Rejection(
            "purchase.requested",
            "purchase.declined",
            "accounts",
            (("purchase_id", "purchase_id"), ("account_id", "account_id"), ("amount", "amount")),
        ),
        Rejection(
            "repayment.received",
            "repayment.rejected",
            "accounts",
            (("payment_id", "payment_id"), ("account_id", "account_id"), ("amount", "amount")),
        ),
        Rejection(
            "plan.offers.requested",
            "plan.ineligible",
            "restructuring",
            (("request_id", "request_id"), ("account_id", "account_id")),
        ),
        # An acceptance has no request id: its refusals carry the offer id there (as the handler's do).
        Rejection(
            "plan.offer.accepted",
            "plan.ineligible",
            "restructuring",
            (("request_id", "offer_id"), ("account_id", "account_id")),
        ),
        Rejection(
            "plan.adjustment.requested",
            "plan.adjustment.rejected",
            "restructuring",
            (("request_id", "request_id"), ("plan_id", "plan_id")),
        ),
        Rejection(
            "collection.outcome.recorded",
            "collection.outcome.rejected",
            "collections",
            (("task_id", "task_id"), ("account_id", "account_id")),
        ),
        Rejection("sms.delivery.reported", "sms.delivery.rejected", "collections", (("message_id", "message_id"),)),
        Rejection(
            "delinquency.pause.requested",
            "delinquency.pause.rejected",
            "accounts",
            (("request_id", "request_id"), ("account_id", "account_id")),
        ),
        Rejection(
            "dispute.opened",
            "dispute.rejected",
            "accounts",
            (("dispute_id", "dispute_id"), ("account_id", "account_id")),
        ),
        Rejection(
            "dispute.resolved",
            "dispute.resolution.rejected",
            "accounts",
            (("resolution_id", "resolution_id"), ("dispute_id", "dispute_id")),
        ),
        Rejection(
            "waiver.requested",
            "waiver.rejected",
            "accounts",
            (("request_id", "request_id"), ("account_id", "account_id")),
        ),
        Rejection(
            "waiver.decision.recorded",
            "waiver.decision.rejected",
            "accounts",
            (("decision_id", "decision_id"), ("waiver_id", "waiver_id")),
        ),
        Rejection(
            "delinquency.resume.requested",
            "delinquency.resume.rejected",
            "accounts",
            (("request_id", "request_id"), ("account_id", "account_id")),
        ),
    )
}


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic's errors as the wire's ``errors``: ``loc`` and ``msg`` only, never the input."""
    return [
        {"loc": ".".join(str(part) for part in error["loc"]) or "payload", "msg": error["msg"]}
        for error in exc.errors(include_url=False, include_context=False, include_input=False)[:MAX_ERRORS]
    ]


def answered_by(service: str) -> dict[str, Rejection]:
    """The commands ``service`` answers when their payload is refused."""
    return {command: r for command, r in REJECTIONS.items() if r.answered_by == service}
