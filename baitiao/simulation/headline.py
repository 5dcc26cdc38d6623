"""How the portfolio did, in a lender's words: the headline figures and a few sentences.

Everything here is derived from the report's own figures (report.json as written), so
``baitiao report OUT`` can rebuild it from a finished run. Each figure carries its
definition; a figure the run cannot know yet (nothing written off before 180 days past
due, nothing waived if nothing waives) is shown as 0 with that definition, never guessed.
Money stays ``Decimal``; rates are fractions rounded to 4 places.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from baitiao.simulation.tally import NINETY_PLUS, PAST_DUE, SIXTY_PLUS, THIRTY_PLUS

BUCKET_LABELS = {
    "current": "current",
    "1-3": "1-3 days past due",
    "4-30": "4-30 days past due",
    "31-60": "31-60 days past due",
    "61-90": "61-90 days past due",
    "91-179": "91-179 days past due",
    "180+": "180+ days past due",
    "in_plan": "in an installment plan",
}
STAGE_LABELS = {
    "pre_due": "before the due date",
    "grace": "grace (1-3 days past due)",
    "early": "early (4-30)",
    "mid": "mid (31-60)",
    "late": "late (61-90)",
    "legal": "legal (91+)",
}


def ratio(part: Any, whole: Any) -> float:
    """part / whole as a fraction rounded to 4 places; 0 when there is nothing to divide by."""
    whole_d = Decimal(str(whole))
    return round(float(Decimal(str(part)) / whole_d), 4) if whole_d else 0.0


def shares(row: dict[str, Any], accounts: int) -> dict[str, float]:
    """One day of the bucket timeline as the lender's shares of all accounts."""
    return {
        "delinquency_rate": ratio(sum(row.get(b, 0) for b in PAST_DUE), accounts),
        "30+": ratio(sum(row.get(b, 0) for b in THIRTY_PLUS), accounts),
        "60+": ratio(sum(row.get(b, 0) for b in SIXTY_PLUS), accounts),
        "90+": ratio(sum(row.get(b, 0) for b in NINETY_PLUS), accounts),
    }


def month_ends(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last row of each month (the run's last day closes its month)."""
    last: dict[str, dict[str, Any]] = {}
    for row in timeline:
        last[row["date"][:7]] = row
    return list(last.values())


def _figure(label: str, value: Any, definition: str, kind: str = "count") -> dict[str, Any]:
    return {"label": label, "value": value, "kind": kind, "definition": definition}


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The headline figures (label, value, kind, definition), the month-end shares and the story."""
    accounts = int(report["config"]["accounts"])
    money = {k: Decimal(str(v)) for k, v in report["money"].items()}
    timeline = report["delinquency"]["timeline"]
    last = timeline[-1] if timeline else {}
    end = shares(last, accounts)
    col, plans = report["collections"], report["plans"]
    cures = sum(int(v["cured"]) for v in col["cure_rates"]["by_stage"].values())
    entered_overdue = sum(int(v["entered"]) for s, v in col["cure_rates"]["by_stage"].items() if s != "pre_due")
    contacts = int(col["sms_sent"]) + int(col["call_attempts"])
    charged = money["penalty_charged"] + money["late_fees_charged"]
    net_loss = money["written_off"] - money["recovered"]
    billed = money["billed_statements"]
    events = plans["events"]
    completed, defaulted = int(events.get("plan.completed", 0)), int(events.get("plan.defaulted", 0))
    suppressed = {str(k): int(v) for k, v in col["suppressed_by_reason"].items()}
    figures = {
        "accounts": _figure("Accounts in the portfolio", accounts, "Credit lines open at the start of the run."),
        "balance": _figure(
            "Balance outstanding (CNY)",
            money["outstanding"],
            "What customers owe at the end: principal, penalty, late fees and plan balances, less credit balances.",
            "money",
        ),
        "delinquency_rate": _figure(
            "Delinquency rate",
            end["delinquency_rate"],
            "Accounts 1 or more days past due on the last day, over all accounts (accounts in a plan "
            "and keeping it count as not past due).",
            "rate",
        ),
        "30+": _figure("30+ share", end["30+"], "Accounts more than 30 days past due, over all accounts.", "rate"),
        "60+": _figure("60+ share", end["60+"], "Accounts more than 60 days past due, over all accounts.", "rate"),
        "90+": _figure("90+ share", end["90+"], "Accounts more than 90 days past due, over all accounts.", "rate"),
        "billed": _figure(
            "Billed on statements (CNY)",
            billed,
            "Principal of the monthly statements. Bills re-issued when a plan defaults are left out: that "
            "money was billed once already (all bills together: money.billed).",
            "money",
        ),
        "collected": _figure("Collected (CNY)", money["repaid"], "Repayments applied to the accounts.", "money"),
        "collected_of_billed": _figure(
            "Collected of billed",
            ratio(money["repaid"], billed),
            "Collected over billed on statements; repayments of purchases not yet billed can push it above 100%.",
            "rate",
        ),
        "penalty_and_fees_charged": _figure(
            "Penalty interest and late fees charged (CNY)",
            charged,
            "Penalty interest accrued on overdue principal plus late fees at the end of grace.",
            "money",
        ),
        "penalty_and_fees_reversed": _figure(
            "Penalty and fees reversed (CNY)",
            money["penalty_reversed"] + money["late_fees_reversed"],
            "Charges taken back when a repayment dated earlier arrived (applied as of its payment time).",
            "money",
        ),
        "waived": _figure(
            "Waived (CNY)",
            money["waived"],
            "Charges the product gives up under the grace rule (booked as waiver expense); 0 if nothing was waived.",
            "money",
        ),
        "written_off": _figure(
            "Written off (CNY)",
            money["written_off"],
            "Balances charged off at 180 days past due; 0 when no account got that far in the run.",
            "money",
        ),
        "net_loss": _figure(
            "Net loss (CNY)", net_loss, "Written off less recovered (repayments on written-off bills).", "money"
        ),
        "loss_rate": _figure(
            "Net loss of billed", ratio(net_loss, billed), "Net loss over billed on statements.", "rate"
        ),
        "cure_rate": _figure(
            "Cure rate",
            ratio(cures, entered_overdue),
            "Cures (a case closed because the account is current again) over entries into an overdue stage "
            "(grace and later); by stage and grade below.",
            "rate",
        ),
        "cures": _figure("Cures", cures, "Cases closed as cured, in any stage.", "count"),
        "contacts_per_cure": _figure(
            "Contacts per cure",
            ratio(contacts, cures),
            "SMS sent plus collector calls attempted, over cures.",
            "number",
        ),
        "plans_offered": _figure("Plans offered", int(plans["requests"].get("offered", 0)), "Offers made.", "count"),
        "plans_accepted": _figure(
            "Plans accepted", int(events.get("plan.activated", 0)), "Offers accepted and activated.", "count"
        ),
        "plans_completed": _figure("Plans completed", completed, "Plans paid off to the last installment.", "count"),
        "plans_defaulted": _figure(
            "Plans defaulted", defaulted, "Plans ended by a missed installment; the balance is billed again.", "count"
        ),
        "plan_success": _figure(
            "Plan success",
            ratio(completed, completed + defaulted),
            "Completed over completed plus defaulted (plans still running are not counted).",
            "rate",
        ),
        "contacts_suppressed": _figure(
            "Contacts suppressed",
            sum(suppressed.values()),
            "Contacts the compliance rules held back (outside 08:00-21:00, daily caps, promise, cured, in a plan).",
            "count",
        ),
        "contacts_outside_window": _figure(
            "Contacts outside 08:00-21:00",
            int(col["contacts_outside_window_count"]),
            "SMS sent or calls made outside the permitted hours; must be 0.",
            "count",
        ),
    }
    figures |= roll_figures(report["delinquency"]["roll_rates"]["matrix"])
    over_time = [{"date": row["date"], **shares(row, accounts)} for row in month_ends(timeline)]
    return {
        "figures": figures,
        "suppressed_by_reason": suppressed,
        "month_ends": over_time,
        "story": story(report, figures, timeline, accounts),
    }


def roll_figures(matrix: dict[str, Any]) -> dict[str, Any]:
    """Two roll rates a lender watches: current to past due, and 4-30 days past due onward."""

    def rolled(origin: str, into: tuple[str, ...]) -> float:
        row = matrix.get(origin, {"accounts": 0, "to": {}})
        return ratio(sum(int(row["to"].get(b, 0)) for b in into), int(row["accounts"]))

    return {
        "roll_current_to_past_due": _figure(
            "Roll rate, current to past due",
            rolled("current", PAST_DUE),
            "Accounts current at a month end that were past due at the next month end, over those current "
            "(account-months); the whole matrix in Roll rates.",
            "rate",
        ),
        "roll_4_30_to_31_plus": _figure(
            "Roll rate, 4-30 to 31+ days past due",
            rolled("4-30", THIRTY_PLUS),
            "Accounts 4-30 days past due at a month end that were more than 30 days past due at the next, "
            "over those 4-30 days past due.",
            "rate",
        ),
    }


def story(report: dict[str, Any], figures: dict[str, Any], timeline: list[dict[str, Any]], accounts: int) -> list[str]:
    """A few sentences on what happened, generated from the figures."""
    cfg = report["config"]
    if not timeline:
        return ["The run closed no day, so there is nothing to say yet."]
    sentences = [
        f"{accounts:,} accounts over {cfg['days']} days from {cfg['start_date']}: on {timeline[-1]['date']} "
        f"{pct(figures['delinquency_rate']['value'])} were past due, {pct(figures['30+']['value'])} more than "
        f"30 days and {pct(figures['90+']['value'])} more than 90."
    ]
    peak = max(timeline, key=lambda row: sum(row.get(b, 0) for b in PAST_DUE))
    peak_count = sum(peak.get(b, 0) for b in PAST_DUE)
    if peak_count:
        biggest = max(PAST_DUE, key=lambda b: peak.get(b, 0))
        behaviours = report["portfolio"]["behaviours"]
        late = sum(int(behaviours.get(k, 0)) for k in ("late_after_grace", "partial", "stops_paying", "plan_breaks"))
        sentences.append(
            f"Delinquency peaked in {_month(peak['date'])} ({peak['date']}: {peak_count:,} accounts, "
            f"{pct(peak_count / accounts)}), most of them {BUCKET_LABELS[biggest]}{_why(biggest)}; {late:,} customers "
            "of the mix "
            "pay late after grace, partly, stop paying or break their plan."
        )
    sentences.append(
        f"Of the accounts current at a month end, {pct(figures['roll_current_to_past_due']['value'])} were past "
        f"due a month later; of those 4-30 days past due, {pct(figures['roll_4_30_to_31_plus']['value'])} rolled "
        "on past 30 days."
    )
    sentences.append(
        f"Customers paid {money(figures['collected']['value'])} CNY against {money(figures['billed']['value'])} "
        f"billed ({pct(figures['collected_of_billed']['value'])}); penalty and fees charged came to "
        f"{money(figures['penalty_and_fees_charged']['value'])} CNY, waived {money(figures['waived']['value'])}."
    )
    stages = {s: v for s, v in report["collections"]["cure_rates"]["by_stage"].items() if s != "pre_due"}
    if stages:
        best = max(stages, key=lambda s: stages[s]["rate"] or 0)
        sentences.append(
            f"{figures['cures']['value']:,} cures ({pct(figures['cure_rate']['value'])} of entries into an overdue "
            f"stage), best {STAGE_LABELS.get(best, best)} at {pct(stages[best]['rate'] or 0)}, "
            f"{figures['contacts_per_cure']['value']:,.1f} contacts per cure."
        )
    sentences.append(
        f"{figures['plans_offered']['value']:,} plans offered, {figures['plans_accepted']['value']:,} accepted, "
        f"{figures['plans_completed']['value']:,} completed and {figures['plans_defaulted']['value']:,} defaulted."
    )
    if Decimal(str(figures["written_off"]["value"])) == 0:
        sentences.append("Nothing was written off: no account reached 180 days past due within the run.")
    else:
        sentences.append(f"Net loss: {money(figures['net_loss']['value'])} CNY written off less recovered.")
    return sentences


def _why(bucket: str) -> str:
    if bucket == "1-3":
        return " (the first days after a due date, before customers late within grace pay)"
    return ""


def pct(value: Any) -> str:
    return f"{float(value):.1%}"


def money(value: Any) -> str:
    return f"{Decimal(str(value)):,.2f}"


def shown(figure: dict[str, Any]) -> str:
    """A figure as a lender reads it: percentages, thousands separators, CNY with 2 decimals."""
    kind, value = figure["kind"], figure["value"]
    if kind == "rate":
        return pct(value)
    if kind == "money":
        return money(value)
    if kind == "number":
        return f"{float(value):,.1f}"
    return f"{int(value):,}"


def _month(day: str) -> str:
    from datetime import date

    return date.fromisoformat(day).strftime("%B %Y")
