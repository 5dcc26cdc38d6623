"""The product rulebook (docs/rules.md) as one validated settings object.

Every number of the rulebook is a default here, named as the rulebook names it, and
can be overridden by a YAML or JSON file (``BAITIAO_RULES_FILE``). Domain code
receives the section it needs as a plain argument; it never reads settings itself.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

Grade = Literal["A", "B", "C", "D", "E"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BillingRules(_Section):
    """RULES section 1: statement and due days."""

    statement_day: int = Field(1, ge=1, le=28)
    due_day: int = Field(10, ge=1, le=28)


class OverdueRules(_Section):
    """RULES section 2: daily close, penalty interest, late fee, cap, charge-off."""

    grace_period_days: int = Field(3, ge=0)
    penalty_daily_rate: Decimal = Decimal("0.0005")
    late_fee_rate: Decimal = Decimal("0.01")
    late_fee_max: Decimal = Decimal("30.00")
    overdue_charge_cap_rate: Decimal = Decimal("0.24")
    charge_off_dpd: int = Field(180, ge=1)
    arrears_tolerance: Decimal = Field(Decimal("1.00"), ge=0)

    @property
    def arrears_tolerance_fen(self) -> int:
        """The tolerance as the databases count money: fen."""
        return int(self.arrears_tolerance * 100)

    @property
    def late_fee_dpd(self) -> int:
        """The close at the end of grace (DPD = grace + 1) charges the late fee."""
        return self.grace_period_days + 1


class LockLadderRules(_Section):
    """RULES section 3: the lock ladder thresholds by the account's maximum DPD."""

    suspend_dpd: int = 1
    report_dpd: int = 4
    freeze_dpd: int = 31
    close_dpd: int = 91
    charge_off_dpd: int = 180
    limit_cut_ratio: Decimal = Decimal("0.50")
    limit_restore_clean_days: int = 90


class WaiverRules(_Section):
    """RULES 4.5: hardship waivers and their maker-checker threshold."""

    approval_threshold: Decimal = Field(Decimal("100.00"), ge=0)


class DisputeRules(_Section):
    """RULES 4.6: disputes' service level and what a rejected dispute charges."""

    service_level_days: int = Field(15, ge=1)
    charge_disputed_days_on_rejection: bool = False


class CreditReportRules(_Section):
    """RULES section 5: bureau marks and their retention."""

    mark_dpd: int = 4
    mark_retention_years: int = 5
    report_dir: str = "credit-reports"


class ContactCompliance(_Section):
    """RULES section 6, compliance: enforced before every contact."""

    window_start: str = "08:00"
    window_end: str = "21:00"
    sms_per_day: int = 1
    calls_per_day: int = 3
    calls_per_7_days: int = 7
    promise_pause_extra_days: int = 1
    promise_max_days: int = 30  # a promised date at most this many days after the call
    sms_segment_chars: int = 70
    sms_concat_segment_chars: int = 67  # per part of a longer SMS (UCS-2 with a 6-byte header)


class CollectionsRules(_Section):
    """RULES section 6: stages and the default grade; the strategy itself is a file."""

    default_grade: Grade = "C"
    strategy_file: str | None = None  # None: the packaged strategy.yaml
    templates_file: str | None = None  # None: the packaged templates.yaml
    compliance: ContactCompliance = ContactCompliance()


class RiskScorecard(_Section):
    """RULES section 7: points from a base score, grade cut-offs."""

    base_score: int = 600
    dpd_points: list[tuple[int, int, int]] = [(1, 30, -30), (31, 60, -60), (61, 90, -100)]
    overdue_bill_points: int = -15
    overdue_bill_points_floor: int = -90
    overdue_bill_lookback_months: int = 12
    months_on_book_points: list[tuple[int, int | None, int]] = [(24, None, 30), (12, 23, 15), (0, 5, -20)]
    dti_points: list[tuple[Decimal, int]] = [(Decimal("0.2"), 30), (Decimal("0.5"), 0)]
    dti_above_points: int = -40
    income_unknown_points: int = -20
    grade_floors: dict[Grade, int] = {"A": 620, "B": 580, "C": 540, "D": 500}


class RestructuringRules(_Section):
    """RULES section 8: eligibility, terms, fee rates, disclosure limits."""

    max_dpd: int = 90
    eligible_grades: list[Grade] = ["A", "B", "C", "D"]
    terms_by_grade: dict[Grade, list[int]] = {
        "A": [3, 6, 9, 12, 18, 24],
        "B": [3, 6, 9, 12, 18, 24],
        "C": [3, 6, 9, 12, 18, 24],
        "D": [3, 6, 12],
    }
    monthly_fee_rate_by_grade: dict[Grade, Decimal] = {
        "A": Decimal("0.0050"),
        "B": Decimal("0.0060"),
        "C": Decimal("0.0070"),
        "D": Decimal("0.0080"),
    }
    methods: list[Literal["equal_principal", "equal_installment"]] = ["equal_principal"]
    apr_cap: Decimal = Decimal("0.24")
    affordability_ratio: Decimal = Decimal("0.50")
    offer_valid_days: int = 7
    max_term: int = 24
    default_installment_dpd: int = 31
    default_overdue_installments: int = 2
    adjustments_per_plan: int = 1


class ProductRules(_Section):
    """The whole rulebook. ``ProductRules()`` is the rulebook's defaults."""

    billing: BillingRules = BillingRules()
    overdue: OverdueRules = OverdueRules()
    lock_ladder: LockLadderRules = LockLadderRules()
    credit_report: CreditReportRules = CreditReportRules()
    waivers: WaiverRules = WaiverRules()
    disputes: DisputeRules = DisputeRules()
    collections: CollectionsRules = CollectionsRules()
    risk: RiskScorecard = RiskScorecard()
    restructuring: RestructuringRules = RestructuringRules()

    @model_validator(mode="after")
    def _ladder_consistent(self) -> "ProductRules":
        ladder = self.lock_ladder
        steps = [ladder.suspend_dpd, ladder.report_dpd, ladder.freeze_dpd, ladder.close_dpd, ladder.charge_off_dpd]
        if steps != sorted(steps):
            raise ValueError(f"lock_ladder thresholds must increase: {steps}")
        return self


def load_rules(path: str | Path | None) -> ProductRules:
    """The rulebook's defaults, overridden by a YAML or JSON file when one is given.

    A bad file fails loudly at start-up with pydantic's message naming the field.
    """
    if path is None:
        return ProductRules()
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    return ProductRules.model_validate(data or {})
