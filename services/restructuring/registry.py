"""restructuring's consumed event types, each with its handler (the worker's and the tests' one map).

Only imports: the rules live in the modules named for what they handle. The types that
come in floods are ``BatchHandler``s on the projection (``projection.ProjectionRun``),
taking a run of events at once; a run of one (the guarded retry pass, a quiet hour) is
the same code.
"""

from __future__ import annotations

from services.restructuring import handlers
from services.restructuring.bills import bill_issued_batch, bill_overdue_batch
from services.restructuring.grants import credit_line_granted_batch
from services.restructuring.repayments import repayment_applied_batch
from services.restructuring.snapshots import account_cured_batch, account_delinquency_updated_batch
from shared.bus.handling import BatchHandler, Handler

HANDLERS: dict[str, Handler | BatchHandler] = {
    "credit.line.granted": BatchHandler(credit_line_granted_batch),  # lines granted in bulk
    "bill.issued": BatchHandler(bill_issued_batch),  # a statement run issues a cycle's bills at once
    "bill.overdue": BatchHandler(bill_overdue_batch),  # a close sends a cycle's unpaid bills at once
    "account.delinquency.updated": BatchHandler(account_delinquency_updated_batch),  # the nightly flood
    "account.cured": BatchHandler(account_cured_batch),  # a close cures many accounts at once
    "repayment.applied": BatchHandler(repayment_applied_batch),  # every payment, as accounts applies runs
    "plan.offers.requested": handlers.plan_offers_requested,
    "plan.offer.accepted": handlers.plan_offer_accepted,
    "plan.adjustment.requested": handlers.plan_adjustment_requested,
    "delinquency.paused": handlers.delinquency_paused,
    "delinquency.resumed": handlers.delinquency_resumed,
}
