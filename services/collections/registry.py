"""collections' consumed event types, each with its handler (the worker's and the tests' one map).

Only imports: the rules live in the modules named for what they handle. The types that
come in floods are ``BatchHandler``s, taking a run of events at once; a run of one (the
guarded retry pass, a quiet hour) is the same code.
"""

from __future__ import annotations

from services.collections import handlers
from services.collections.bills import bill_issued_batch
from services.collections.cures import account_cured_batch
from services.collections.delinquency import account_delinquency_updated_batch, bill_overdue_batch
from services.collections.grants import credit_line_granted_batch
from services.collections.repayments import repayment_applied_batch
from services.collections.risk_assessments import risk_assessed_batch
from shared.bus.handling import BatchHandler, Handler

HANDLERS: dict[str, Handler | BatchHandler] = {
    "credit.line.granted": BatchHandler(credit_line_granted_batch),  # lines granted in bulk
    "bill.issued": BatchHandler(bill_issued_batch),  # a statement run issues a cycle's bills at once
    "bill.overdue": BatchHandler(bill_overdue_batch),  # the close's overdue bills, a block per chunk
    "bill.charged_off": handlers.bill_charged_off,
    "account.delinquency.updated": BatchHandler(account_delinquency_updated_batch),  # the nightly flood
    "account.cured": BatchHandler(account_cured_batch),  # a morning's payments cure thousands
    "repayment.applied": BatchHandler(repayment_applied_batch),  # every payment
    "risk.assessed": BatchHandler(risk_assessed_batch),  # one per snapshot restructuring takes
    "plan.activated": handlers.plan_activated,
    "plan.installment.overdue": handlers.plan_installment_overdue,
    "plan.installment.paid": handlers.plan_installment_paid,
    "plan.defaulted": handlers.plan_defaulted,
    "plan.completed": handlers.plan_completed,
    "collection.outcome.recorded": handlers.collection_outcome_recorded,
    "sms.delivery.reported": handlers.sms_delivery_reported,
    "delinquency.paused": handlers.delinquency_paused,
    "delinquency.resumed": handlers.delinquency_resumed,
    "dispute.accepted": handlers.dispute_accepted,
    "dispute.closed": handlers.dispute_closed,
}
