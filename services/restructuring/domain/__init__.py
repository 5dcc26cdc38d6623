"""Pure rules of the restructuring service (RULES sections 7 and 8).

No database, broker, clock or settings here: functions take plain values and the
rules section (``RiskScorecard`` / ``RestructuringRules``) and return frozen
decisions. Handlers load state, call these, save and emit.
"""

from services.restructuring.domain.apr import AprError, annualized_rate, monthly_irr, schedule_apr
from services.restructuring.domain.offers import (
    DPD_TOO_HIGH,
    GRADE_NOT_ELIGIBLE,
    NO_OFFER_WITHIN_LIMITS,
    NO_OVERDUE_BILLS,
    PLAN_ALREADY_ACTIVE,
    Offer,
    OverdueBillBalance,
    build_offers,
    check_eligibility,
    is_affordable,
    make_offer,
    offer_expires_at,
    restructured_principal,
)
from services.restructuring.domain.plan import (
    ALREADY_ADJUSTED,
    INSTALLMENT_OVERDUE,
    INVALID_TERM,
    NOT_LONGER,
    NOTHING_REMAINING,
    PRINCIPAL_TOO_SMALL,
    TARGET_NOT_LOWER,
    TARGET_UNREACHABLE,
    TERM_TOO_LONG,
    AdjustmentAccepted,
    AdjustmentDecision,
    AdjustmentKind,
    AdjustmentRejected,
    DefaultSettlement,
    EarlySettlementQuote,
    InstallmentAllocation,
    InstallmentPaid,
    InstallmentPosition,
    OverdueInstallment,
    Paid,
    PaymentApplication,
    PlanError,
    PlanReview,
    apply_payment,
    current_period,
    default_settlement,
    early_settlement_quote,
    extend,
    is_completed,
    is_defaulted,
    lower_payment,
    overdue_installments,
    positions,
    review_plan,
    total_paid,
)
from services.restructuring.domain.risk import (
    Factor,
    RiskAssessment,
    assess_risk,
    grade_for,
    months_on_book,
    overdue_bills_in_lookback,
)
from services.restructuring.domain.schedule import (
    METHODS,
    Installment,
    Method,
    Schedule,
    ScheduleError,
    add_months,
    annuity_payment,
    build_schedule,
    equal_installment_schedule,
    equal_principal_schedule,
    installment_due_date,
    installment_due_dates,
)

__all__ = [name for name in dir() if not name.startswith("_")]
