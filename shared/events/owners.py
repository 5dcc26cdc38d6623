"""Who may say what: every event type of the contract has exactly one owner.

A consumer applies an event only when its envelope's ``producer`` owns its type and the
signature verifies with that producer's key (shared/events/signing.py). The owners are the
three services and the named outside systems that feed them; docs/events.md lists them.
"""

from __future__ import annotations

ACCOUNTS = "accounts"
COLLECTIONS = "collections"
RESTRUCTURING = "restructuring"
SERVICE_PRODUCERS: tuple[str, ...] = (ACCOUNTS, COLLECTIONS, RESTRUCTURING)

# The outside systems, each feeding the commands it alone may send.
CREDIT_APPROVAL = "credit-approval"
CHECKOUT = "checkout"
PAYMENT_GATEWAY = "payment-gateway"
CUSTOMER_APP = "customer-app"
COLLECTORS_DESK = "collectors-desk"
SMS_PROVIDER = "sms-provider"
OPERATORS_DESK = "operators-desk"
OUTSIDE_PRODUCERS: tuple[str, ...] = (
    CREDIT_APPROVAL,
    CHECKOUT,
    PAYMENT_GATEWAY,
    CUSTOMER_APP,
    COLLECTORS_DESK,
    SMS_PROVIDER,
    OPERATORS_DESK,
)
PRODUCERS: tuple[str, ...] = SERVICE_PRODUCERS + OUTSIDE_PRODUCERS

_INBOUND = {
    "credit.line.granted": CREDIT_APPROVAL,
    "purchase.requested": CHECKOUT,
    "repayment.received": PAYMENT_GATEWAY,
    "plan.offers.requested": CUSTOMER_APP,
    "plan.offer.accepted": CUSTOMER_APP,
    "plan.adjustment.requested": CUSTOMER_APP,
    "dispute.opened": CUSTOMER_APP,
    "collection.outcome.recorded": COLLECTORS_DESK,
    "sms.delivery.reported": SMS_PROVIDER,
    "delinquency.pause.requested": OPERATORS_DESK,
    "delinquency.resume.requested": OPERATORS_DESK,
    "waiver.requested": OPERATORS_DESK,
    "waiver.decision.recorded": OPERATORS_DESK,
    "dispute.resolved": OPERATORS_DESK,
}

_ACCOUNTS_FACTS = (
    "credit.line.opened",
    "credit.line.rejected",
    "purchase.approved",
    "purchase.declined",
    "bill.issued",
    "bill.overdue",
    "bill.charged_off",
    "account.delinquency.updated",
    "account.restrictions.changed",
    "account.cured",
    "repayment.applied",
    "repayment.rejected",
    "credit.report.generated",
    "delinquency.paused",
    "delinquency.pause.rejected",
    "delinquency.resumed",
    "delinquency.resume.rejected",
    "waiver.pending",
    "waiver.approved",
    "waiver.declined",
    "waiver.applied",
    "waiver.rejected",
    "waiver.decision.rejected",
    "dispute.accepted",
    "dispute.rejected",
    "dispute.closed",
    "dispute.resolution.rejected",
    "dispute.service_level.breached",
    "daily.close.completed",
)

_COLLECTIONS_FACTS = (
    "collection.outcome.rejected",
    "sms.delivery.rejected",
    "reminder.sent",
    "contact.suppressed",
    "collection.task.created",
    "collection.notice.sent",
    "collection.escalated",
    "collection.case.closed",
)

_RESTRUCTURING_FACTS = (
    "risk.assessed",
    "plan.offered",
    "plan.ineligible",
    "plan.activated",
    "plan.installment.overdue",
    "plan.installment.paid",
    "plan.defaulted",
    "plan.adjusted",
    "plan.adjustment.rejected",
    "plan.completed",
)

OWNERS: dict[str, str] = {
    **_INBOUND,
    **{t: ACCOUNTS for t in _ACCOUNTS_FACTS},
    **{t: COLLECTIONS for t in _COLLECTIONS_FACTS},
    **{t: RESTRUCTURING for t in _RESTRUCTURING_FACTS},
}


def owner_of(event_type: str) -> str | None:
    """The one producer that may publish ``event_type`` (None for a type the contract lacks)."""
    return OWNERS.get(event_type)


def types_owned_by(producer: str) -> tuple[str, ...]:
    """The event types ``producer`` may publish (what its broker user may write, too)."""
    return tuple(t for t, owner in OWNERS.items() if owner == producer)
