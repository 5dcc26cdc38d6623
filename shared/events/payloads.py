"""Every payload of the wire contract (docs/events.md) as a pydantic model, one per event type.

The field names are the public contract: never rename or remove one; adding an
optional field is allowed. Unknown fields are ignored so that a newer producer
can talk to an older consumer.

Its length: the whole wire contract's payloads in one module, so that one page of code
matches one page of the contract (docs/events.md), checked by tests/unit/test_contract_docs.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from shared.events.types import (
    TEXT_MAX,
    BusinessDate,
    DecimalString,
    InboundId,
    Money,
    PositiveMoney,
    Rate,
    Timestamp,
)


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


Id = str  # identifiers are opaque strings chosen by their producer (inbound ones: ``InboundId``)


# --- inbound: published by outside systems -------------------------------------------


class CreditLineGranted(Payload):
    account_id: InboundId
    customer_id: InboundId
    identity_hash: str = Field(min_length=8, max_length=128)
    credit_limit: PositiveMoney
    name: str = Field(min_length=1, max_length=TEXT_MAX)
    phone: str = Field(min_length=5, max_length=32)
    monthly_income: Money | None = None
    opened_on: BusinessDate


class PurchaseRequested(Payload):
    purchase_id: InboundId
    account_id: InboundId
    amount: DecimalString  # judged by accounts: a bad value is declined `invalid_amount`
    merchant: str = Field(max_length=TEXT_MAX)
    requested_at: Timestamp


class RepaymentReceived(Payload):
    payment_id: InboundId
    account_id: InboundId
    amount: DecimalString  # judged by accounts: a bad value is rejected with a reason
    currency: str = Field(max_length=8)
    paid_at: Timestamp
    channel: str = Field(max_length=32)


class PlanOffersRequested(Payload):
    request_id: InboundId
    account_id: InboundId
    monthly_income: Money | None = None


class PlanOfferAccepted(Payload):
    offer_id: InboundId
    account_id: InboundId
    accepted_at: Timestamp


class PlanAdjustmentRequested(Payload):
    request_id: InboundId
    plan_id: InboundId
    kind: Literal["extend", "lower_payment"]
    new_term: int | None = Field(None, ge=1)
    target_payment: PositiveMoney | None = None


class CollectionOutcomeRecorded(Payload):
    task_id: InboundId
    account_id: InboundId
    outcome: Literal["no_answer", "promise_to_pay", "refused", "wrong_number", "paid"]
    promised_amount: Money | None = None
    promised_date: BusinessDate | None = None


class SmsDeliveryReported(Payload):
    message_id: InboundId
    status: Literal["delivered", "failed"]
    reported_at: Timestamp


PauseReason = Literal["dispute", "disaster_relief", "bereavement", "fraud_investigation", "regulator"]


class DelinquencyPauseRequested(Payload):
    request_id: InboundId
    account_id: InboundId
    reason: PauseReason
    until: BusinessDate | None = None
    operator_id: InboundId


class DelinquencyResumeRequested(Payload):
    request_id: InboundId
    account_id: InboundId
    operator_id: InboundId


WaiverComponent = Literal["penalty_interest", "late_fee"]
WaiverReason = Literal["hardship", "bereavement", "disaster_relief", "service_failure", "goodwill"]


class WaiverRequested(Payload):
    request_id: InboundId
    account_id: InboundId
    bill_id: InboundId
    component: WaiverComponent
    amount: PositiveMoney
    reason: WaiverReason
    requested_by: InboundId


class WaiverDecisionRecorded(Payload):
    decision_id: InboundId
    waiver_id: InboundId
    decision: Literal["approve", "decline"]
    decided_by: InboundId


DisputeReason = Literal["not_received", "not_as_described", "unauthorised", "duplicate_charge", "cancelled"]
DisputeOutcome = Literal["upheld", "partly_upheld", "rejected"]


class DisputeOpened(Payload):
    dispute_id: InboundId
    account_id: InboundId
    bill_id: InboundId | None = None
    purchase_id: InboundId | None = None
    amount: PositiveMoney
    reason: DisputeReason
    opened_at: Timestamp


class DisputeResolved(Payload):
    resolution_id: InboundId
    dispute_id: InboundId
    outcome: DisputeOutcome
    upheld_amount: PositiveMoney | None = None
    resolved_by: InboundId


# --- rejections: the answer to a command the contract refuses -------------------------


class FieldError(Payload):
    """One reason a command's payload failed validation: where (a dotted path) and why."""

    loc: str
    msg: str


class Answer(Payload):
    """A reply that may answer a refused command: ``errors`` travels only when it has some,
    so a business rejection's wire form is what it always was."""

    errors: list[FieldError] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _errors_only_when_refused(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not data.get("errors"):
            data.pop("errors", None)
        return data


# --- emitted by accounts ---------------------------------------------------------------


class CreditLineRejected(Answer):
    account_id: Id
    reason: Literal["invalid_payload"]


class CreditLineOpened(Payload):
    account_id: Id
    credit_limit: Money
    opened_on: BusinessDate


class PurchaseApproved(Payload):
    purchase_id: Id
    account_id: Id
    amount: Money
    available_limit: Money


class PurchaseDeclined(Answer):
    purchase_id: Id
    account_id: Id | None = None
    amount: DecimalString | None = None
    reason: Literal[
        "account_restricted",
        "linked_account_restricted",
        "insufficient_limit",
        "account_closed",
        "unknown_account",
        "invalid_amount",
        "invalid_payload",
    ]


class BillIssued(Payload):
    bill_id: Id
    account_id: Id
    statement_date: BusinessDate
    due_date: BusinessDate
    amount: Money


class BillOverdue(Payload):
    bill_id: Id
    account_id: Id
    due_date: BusinessDate
    business_date: BusinessDate
    dpd: int
    unpaid_principal: Money


class BillChargedOff(Payload):
    bill_id: Id
    account_id: Id
    business_date: BusinessDate
    amount: Money


class DelinquentBill(Payload):
    bill_id: Id
    due_date: BusinessDate
    dpd: int
    unpaid_principal: Money
    penalty_interest: Money
    late_fee: Money


class AccountDelinquencyUpdated(Payload):
    account_id: Id
    business_date: BusinessDate
    max_dpd: int
    overdue_principal: Money
    penalty_interest: Money
    late_fees: Money
    total_overdue: Money
    bills: list[DelinquentBill]


class AccountRestrictionsChanged(Payload):
    account_id: Id
    business_date: BusinessDate
    level: int = Field(ge=0, le=4)
    measures: list[str]
    credit_limit: Money
    available_limit: Money
    cause: Literal["own_overdue", "linked_account", "cure", "plan", "limit_restored"]


class AccountCured(Payload):
    account_id: Id
    business_date: BusinessDate


class Allocation(Payload):
    target: Literal["bill", "plan"]
    target_id: Id
    component: Literal["penalty_interest", "late_fee", "principal", "plan"]
    amount: Money


class RepaymentApplied(Payload):
    payment_id: Id
    account_id: Id
    amount: Money
    allocations: list[Allocation]
    credit_balance: Money
    total_overdue: Money
    paid_on: BusinessDate | None = None  # added (optional): the date the payment took effect


class RepaymentRejected(Answer):
    payment_id: Id
    account_id: Id | None = None
    amount: DecimalString | None = None
    reason: str


class DelinquencyPaused(Payload):
    request_id: Id
    account_id: Id
    reason: PauseReason
    paused_on: BusinessDate
    until: BusinessDate | None = None
    operator_id: Id


class DelinquencyPauseRejected(Answer):
    request_id: Id
    account_id: Id | None = None
    reason: str


class ResumedBill(Payload):
    bill_id: Id
    dpd: int
    days_not_counted: int = Field(ge=0)


class DelinquencyResumed(Payload):
    request_id: Id | None = None
    account_id: Id
    pause_reason: PauseReason
    paused_on: BusinessDate
    resumed_on: BusinessDate
    resumed_by: Literal["operator", "until"]
    operator_id: Id | None = None
    bills: list[ResumedBill]


class DelinquencyResumeRejected(Answer):
    request_id: Id
    account_id: Id | None = None
    reason: str


class WaiverPending(Payload):
    waiver_id: Id
    account_id: Id
    bill_id: Id
    component: WaiverComponent
    amount: Money
    reason: WaiverReason
    requested_by: Id
    requested_on: BusinessDate


class WaiverApproved(Payload):
    decision_id: Id
    waiver_id: Id
    account_id: Id
    approved_by: Id
    approved_on: BusinessDate


class WaiverDeclined(Payload):
    decision_id: Id
    waiver_id: Id
    account_id: Id
    declined_by: Id
    declined_on: BusinessDate


class WaiverApplied(Payload):
    waiver_id: Id
    account_id: Id
    bill_id: Id
    component: WaiverComponent
    amount: Money
    requested_by: Id
    approved_by: Id | None = None
    applied_on: BusinessDate


class WaiverRejected(Answer):
    request_id: Id
    account_id: Id | None = None
    reason: str


class WaiverDecisionRejected(Answer):
    decision_id: Id
    waiver_id: Id | None = None
    reason: str


class DisputeAccepted(Payload):
    dispute_id: Id
    account_id: Id
    bill_id: Id
    purchase_id: Id | None = None
    amount: Money
    reason: DisputeReason
    opened_on: BusinessDate


class DisputeRejected(Answer):
    dispute_id: Id
    account_id: Id | None = None
    reason: str


class DisputeClosed(Payload):
    resolution_id: Id
    dispute_id: Id
    account_id: Id
    bill_id: Id
    outcome: DisputeOutcome
    credited: Money
    penalty_reversed: Money
    late_fee_reversed: Money
    owes_again: Money
    resolved_by: Id
    resolved_on: BusinessDate


class DisputeResolutionRejected(Answer):
    resolution_id: Id
    dispute_id: Id | None = None
    reason: str


class DisputeServiceLevelBreached(Payload):
    dispute_id: Id
    account_id: Id
    opened_on: BusinessDate
    business_date: BusinessDate
    days_open: int


class CreditReportGenerated(Payload):
    month: str = Field(pattern=r"^\d{4}-\d{2}$")
    accounts: int
    path: str


class DailyCloseCompleted(Payload):
    business_date: BusinessDate
    bills_overdue: int
    penalty_accrued: Money
    accounts_restricted: int
    duration_ms: int


# --- emitted by collections ------------------------------------------------------------


class ReminderSent(Payload):
    message_id: Id
    account_id: Id
    channel: Literal["sms"]
    template: str
    stage: str
    business_date: BusinessDate
    sent_at: Timestamp
    segments: int


class CollectionOutcomeRejected(Answer):
    task_id: Id
    account_id: Id | None = None
    reason: Literal["invalid_payload"]


class SmsDeliveryRejected(Answer):
    message_id: Id
    reason: Literal["invalid_payload"]


class ContactSuppressed(Payload):
    account_id: Id
    channel: str
    template: str
    reason: str


class CollectionTaskCreated(Payload):
    task_id: Id
    account_id: Id
    kind: Literal["call", "agency", "legal", "letter"]
    stage: str
    due_by: BusinessDate


class CollectionNoticeSent(Payload):
    """The notice before negative information is reported (征信业管理条例 Art. 15)."""

    notice_id: Id
    account_id: Id
    channel: Literal["sms", "letter"]
    bill_ids: list[Id] = Field(min_length=1)
    business_date: BusinessDate
    sent_at: Timestamp


class CollectionEscalated(Payload):
    account_id: Id
    from_stage: str
    to_stage: str
    business_date: BusinessDate


class CollectionCaseClosed(Payload):
    account_id: Id
    reason: Literal["cured", "restructured", "charged_off"]


# --- emitted by restructuring ----------------------------------------------------------


class RiskFactor(Payload):
    name: str
    points: int


class RiskAssessed(Payload):
    account_id: Id
    score: int
    grade: Literal["A", "B", "C", "D", "E"]
    factors: list[RiskFactor]


class ScheduleLine(Payload):
    period: int
    due_date: BusinessDate
    principal: Money
    fee: Money
    total: Money


class Offer(Payload):
    offer_id: Id
    term: int
    method: Literal["equal_principal", "equal_installment"]
    monthly_fee_rate: Rate
    principal: Money
    total_fee: Money
    apr: Rate
    monthly_payment: Money
    expires_at: Timestamp
    schedule: list[ScheduleLine]


class PlanOffered(Payload):
    request_id: Id
    account_id: Id
    grade: Literal["A", "B", "C", "D", "E"]
    offers: list[Offer]


class PlanIneligible(Answer):
    request_id: Id
    account_id: Id | None = None
    reason: str


class PlanActivated(Payload):
    plan_id: Id
    offer_id: Id
    account_id: Id
    principal: Money
    term: int
    bill_ids: list[Id]
    schedule: list[ScheduleLine]


class PlanInstallmentOverdue(Payload):
    plan_id: Id
    account_id: Id
    period: int
    due_date: BusinessDate
    dpd: int
    amount: Money


class PlanInstallmentPaid(Payload):
    plan_id: Id
    account_id: Id
    period: int
    paid_on: BusinessDate


class PlanDefaulted(Payload):
    plan_id: Id
    account_id: Id
    business_date: BusinessDate
    outstanding_principal: Money
    fees_due: Money
    first_missed_due_date: BusinessDate


class PlanAdjusted(Payload):
    plan_id: Id
    account_id: Id
    request_id: Id
    kind: Literal["extend", "lower_payment"]
    schedule: list[ScheduleLine]
    apr: Rate
    monthly_payment: Money


class PlanAdjustmentRejected(Answer):
    plan_id: Id | None = None
    request_id: Id
    reason: str


class PlanCompleted(Payload):
    plan_id: Id
    account_id: Id
    completed_on: BusinessDate


PAYLOADS: dict[str, type[Payload]] = {
    "credit.line.granted": CreditLineGranted,
    "purchase.requested": PurchaseRequested,
    "repayment.received": RepaymentReceived,
    "plan.offers.requested": PlanOffersRequested,
    "plan.offer.accepted": PlanOfferAccepted,
    "plan.adjustment.requested": PlanAdjustmentRequested,
    "collection.outcome.recorded": CollectionOutcomeRecorded,
    "sms.delivery.reported": SmsDeliveryReported,
    "delinquency.pause.requested": DelinquencyPauseRequested,
    "delinquency.resume.requested": DelinquencyResumeRequested,
    "waiver.requested": WaiverRequested,
    "waiver.decision.recorded": WaiverDecisionRecorded,
    "dispute.opened": DisputeOpened,
    "dispute.resolved": DisputeResolved,
    "credit.line.opened": CreditLineOpened,
    "credit.line.rejected": CreditLineRejected,
    "purchase.approved": PurchaseApproved,
    "purchase.declined": PurchaseDeclined,
    "bill.issued": BillIssued,
    "bill.overdue": BillOverdue,
    "bill.charged_off": BillChargedOff,
    "account.delinquency.updated": AccountDelinquencyUpdated,
    "account.restrictions.changed": AccountRestrictionsChanged,
    "account.cured": AccountCured,
    "repayment.applied": RepaymentApplied,
    "repayment.rejected": RepaymentRejected,
    "credit.report.generated": CreditReportGenerated,
    "delinquency.paused": DelinquencyPaused,
    "delinquency.pause.rejected": DelinquencyPauseRejected,
    "delinquency.resumed": DelinquencyResumed,
    "delinquency.resume.rejected": DelinquencyResumeRejected,
    "waiver.pending": WaiverPending,
    "waiver.approved": WaiverApproved,
    "waiver.declined": WaiverDeclined,
    "waiver.applied": WaiverApplied,
    "waiver.rejected": WaiverRejected,
    "waiver.decision.rejected": WaiverDecisionRejected,
    "dispute.accepted": DisputeAccepted,
    "dispute.rejected": DisputeRejected,
    "dispute.closed": DisputeClosed,
    "dispute.resolution.rejected": DisputeResolutionRejected,
    "dispute.service_level.breached": DisputeServiceLevelBreached,
    "daily.close.completed": DailyCloseCompleted,
    "collection.outcome.rejected": CollectionOutcomeRejected,
    "sms.delivery.rejected": SmsDeliveryRejected,
    "reminder.sent": ReminderSent,
    "contact.suppressed": ContactSuppressed,
    "collection.task.created": CollectionTaskCreated,
    "collection.notice.sent": CollectionNoticeSent,
    "collection.escalated": CollectionEscalated,
    "collection.case.closed": CollectionCaseClosed,
    "risk.assessed": RiskAssessed,
    "plan.offered": PlanOffered,
    "plan.ineligible": PlanIneligible,
    "plan.activated": PlanActivated,
    "plan.installment.overdue": PlanInstallmentOverdue,
    "plan.installment.paid": PlanInstallmentPaid,
    "plan.defaulted": PlanDefaulted,
    "plan.adjusted": PlanAdjusted,
    "plan.adjustment.rejected": PlanAdjustmentRejected,
    "plan.completed": PlanCompleted,
}
