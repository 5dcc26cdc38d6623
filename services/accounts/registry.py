"""accounts' consumed event types, each with its handler (the worker's and the tests' one map).

Only imports: the rules live in the modules named for what they handle. The types that
come in floods are ``BatchHandler``s, taking a run of events at once; a run of one (the
guarded retry pass, a quiet hour) is the same code."""

from __future__ import annotations

from services.accounts.disputes import dispute_opened, dispute_resolved
from services.accounts.grants import credit_line_granted_batch
from services.accounts.pauses import pause_requested, resume_requested
from services.accounts.plans import plan_activated, plan_completed, plan_defaulted
from services.accounts.purchases import purchase_requested_batch
from services.accounts.report_notices import notice_sent
from services.accounts.repayments import repayment_received_batch
from services.accounts.waivers import waiver_decision_recorded, waiver_requested
from shared.bus.handling import BatchHandler, Handler

HANDLERS: dict[str, Handler | BatchHandler] = {
    "credit.line.granted": BatchHandler(credit_line_granted_batch),
    "purchase.requested": BatchHandler(purchase_requested_batch),
    "repayment.received": BatchHandler(repayment_received_batch),
    "plan.activated": plan_activated,
    "plan.defaulted": plan_defaulted,
    "plan.completed": plan_completed,
    "collection.notice.sent": notice_sent,
    "delinquency.pause.requested": pause_requested,
    "delinquency.resume.requested": resume_requested,
    "waiver.requested": waiver_requested,
    "dispute.opened": dispute_opened,
    "dispute.resolved": dispute_resolved,
    "waiver.decision.recorded": waiver_decision_recorded,
}
