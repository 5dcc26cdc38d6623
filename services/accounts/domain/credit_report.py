"""Credit bureau marks and the monthly report line (RULES section 5).

The status codes are those of the 24-month repayment grid of a personal credit report:
``N`` no overdue, ``1``-``7`` overdue 1-30, 31-60, 61-90, 91-120, 121-150, 151-180,
181+ days, ``C`` settled and closed, ``G`` charged off, ``R`` under an active
restructuring plan.

Precedence when several apply at the month's end, first match wins, and why:

1. ``C`` settled and closed: nothing is owed and the account is closed; the line is
   finished, whatever happened before (a charged-off debt later paid in full ends as C).
2. ``G`` charged off: once written off, the grid shows the write-off, not a growing
   DPD bucket (with the default charge-off at DPD 180, ``7`` is then never reached).
3. ``R`` active restructuring plan: while a plan is active "nothing further is
   reported", even for a bill outside the plan.
4. ``1``-``7`` by the month-end maximum DPD.
5. ``N``.

Notice before report (征信业管理条例 Art. 15): a bill's overdue (its DPD, its charge-off)
goes into a month's line only when the customer was told it would be reported by that
month's end (:func:`overdue_reportable`); until then the bill counts as not overdue, and
the first report whose month ends on or after the notice carries it.

Retention: a mark is purged on the day the debt has been settled for
``mark_retention_years`` (5) years; 29 February falls back to 28 February.
"""

from __future__ import annotations

from datetime import date

from shared.rules import CreditReportRules

STATUS_NORMAL = "N"
STATUS_SETTLED = "C"
STATUS_CHARGED_OFF = "G"
STATUS_RESTRUCTURED = "R"

_BUCKET_DAYS = 30
_WORST_BUCKET = 7


def dpd_status(max_dpd: int) -> str:
    """``1`` for DPD 1-30, ``2`` for 31-60, ... ``7`` for 181+; ``N`` when not overdue."""
    if max_dpd < 1:
        return STATUS_NORMAL
    return str(min(_WORST_BUCKET, (max_dpd - 1) // _BUCKET_DAYS + 1))


def bureau_status(
    month_end_max_dpd: int,
    settled_and_closed: bool,
    charged_off: bool,
    in_active_plan: bool,
) -> str:
    """The account's status for the month's line of the report (precedence above)."""
    if settled_and_closed:
        return STATUS_SETTLED
    if charged_off:
        return STATUS_CHARGED_OFF
    if in_active_plan:
        return STATUS_RESTRUCTURED
    return dpd_status(month_end_max_dpd)


def overdue_reportable(report_notice_on: date | None, month_end: date) -> bool:
    """Whether a bill's overdue may be written into the report of the month ending
    ``month_end``: only once the pre-report notice was given, on or before that day."""
    return report_notice_on is not None and report_notice_on <= month_end


def mark_due(dpd: int, already_marked: bool, rules: CreditReportRules) -> bool:
    """A mark is recorded once, when a bill passes the grace period (DPD 4)."""
    return dpd >= rules.mark_dpd and not already_marked


def mark_purge_date(settled_on: date, rules: CreditReportRules) -> date:
    """The first day a mark may no longer be kept: settlement + 5 years."""
    year = settled_on.year + rules.mark_retention_years
    try:
        return settled_on.replace(year=year)
    except ValueError:  # 29 February into a common year
        return settled_on.replace(year=year, day=28)


def marks_to_purge(settled_on: date | None, today: date, rules: CreditReportRules) -> bool:
    """Whether the marks of a debt settled on ``settled_on`` are purged ``today``.

    An unsettled debt (``settled_on`` None) keeps its marks.
    """
    return settled_on is not None and today >= mark_purge_date(settled_on, rules)


def report_month(run_date: date) -> tuple[date, date]:
    """The month a report run on ``run_date`` (the 1st) covers: its first and last day."""
    last = date.fromordinal(run_date.replace(day=1).toordinal() - 1)
    return last.replace(day=1), last
