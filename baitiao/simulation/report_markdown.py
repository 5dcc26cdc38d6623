"""report.md: how the portfolio did first, in a lender's words; the engineering checks last.

Each headline figure sits beside its definition; every section names its chart. The
same sections, in the same order, make report.html (``report_html``).
"""

from __future__ import annotations

from typing import Any

from baitiao.simulation.headline import BUCKET_LABELS, STAGE_LABELS, money, pct, shown

MONEY_LABELS = {
    "purchases_posted": "Purchases posted (lent to merchants on the customers' behalf)",
    "billed": "Billed, all bills (statements and bills re-issued when a plan defaults)",
    "billed_statements": "Billed on monthly statements",
    "repaid": "Collected (repayments applied)",
    "penalty_charged": "Penalty interest charged",
    "penalty_reversed": "Penalty interest reversed (a repayment dated earlier arrived)",
    "late_fees_charged": "Late fees charged",
    "late_fees_reversed": "Late fees reversed",
    "plan_fees": "Installment plan fees",
    "waived": "Waived (grace rule)",
    "written_off": "Written off (180 days past due)",
    "recovered": "Recovered after write-off",
    "receivables": "Receivables (what customers owe)",
    "credit_balances": "Credit balances (customers paid more than they owed)",
    "outstanding": "Balance outstanding (receivables less credit balances)",
}


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


RELIEF_LABELS = {
    "pauses": "accounts paused",
    "pauses_resumed": "pauses resumed",
    "disputes": "disputes opened",
    "disputes_open": "disputes still open",
    "disputes_by_outcome": "disputes by outcome",
    "disputes_credited": "credited back (CNY)",
    "disputes_past_service_level": "disputes past the service level",
}


def sections(report: dict[str, Any]) -> list[tuple[str, list[str], list[str]]]:
    """The report's sections: (heading, chart names, Markdown blocks), in reading order."""
    head = report["headline"]
    figures = head["figures"]
    col, plans = report["collections"], report["plans"]
    timeline = report["delinquency"]["timeline"]
    last = timeline[-1] if timeline else {}
    cure = col["cure_rates"]
    suppressed = head["suppressed_by_reason"]
    return [
        (
            "How the portfolio did",
            ["delinquency"],
            [
                " ".join(head["story"]),
                table(
                    ["figure", "value", "definition"],
                    [[f["label"], shown(f), f["definition"]] for f in figures.values()],
                ),
                "Past due at each month end (shares of all accounts):",
                table(
                    ["month end", "past due", "30+", "60+", "90+"],
                    [
                        [r["date"], pct(r["delinquency_rate"]), pct(r["30+"]), pct(r["60+"]), pct(r["90+"])]
                        for r in head["month_ends"]
                    ],
                ),
            ],
        ),
        (
            "Accounts by delinquency bucket",
            ["buckets"],
            [
                "A bucket is the account's most days past due over its unpaid bills, after the daily close. "
                f"On the last day ({last.get('date', '-')}): "
                + ", ".join(f"{last.get(b, 0):,} {BUCKET_LABELS[b]}" for b in BUCKET_LABELS)
                + "."
            ],
        ),
        (
            "Roll rates",
            ["roll_rates"],
            [
                "Each row is the accounts of one bucket at a month end (account-months, the count in brackets); "
                "the cells say where they were at the next month end, as a percentage of the row. Buckets no "
                "account was in are left out."
            ],
        ),
        (
            "Vintages",
            ["vintages"],
            [
                "Share of a cohort more than 30 days past due at each month end of the run, by its months on "
                "book (months since the line was opened). A cohort is an opening year: the accounts were opened "
                "one to four years before the run."
            ],
        ),
        (
            "Cure rate by stage and grade",
            ["cure_rates"],
            [
                "A cure is a case closed because the account is current again, counted in the stage it was in; "
                "the rate is cures over entries into the stage. The grade is the case's risk grade at the end of "
                "the run (C until restructuring assessed it). Before the due date nothing can be cured.",
                table(
                    ["stage", "entered", "cured", "cure rate"],
                    [
                        [STAGE_LABELS.get(s, s), f"{v['entered']:,}", f"{v['cured']:,}", pct(v["rate"] or 0)]
                        for s, v in cure["by_stage"].items()
                    ],
                ),
            ],
        ),
        (
            "Money (CNY)",
            ["money", "charges"],
            [
                "Billed on statements is what the monthly bills asked for; all bills also count the bills "
                "re-issued when a plan defaults, money billed once already. Names in report.json in brackets.",
                table(
                    ["figure", "CNY"],
                    [[f"{MONEY_LABELS.get(k, k)} (`{k}`)", money(v)] for k, v in report["money"].items()],
                ),
            ],
        ),
        (
            "Contacts and compliance",
            ["contacts"],
            [
                f"{col['sms_sent']:,} SMS sent and {col['call_attempts']:,} collector calls attempted; "
                f"{figures['contacts_suppressed']['value']:,} contacts held back by the compliance rules; "
                f"{figures['contacts_outside_window']['value']:,} outside 08:00-21:00 (must be 0).",
                table(["suppressed because", "contacts"], [[k, f"{v:,}"] for k, v in suppressed.items()])
                if suppressed
                else "No contact was suppressed.",
            ],
        ),
        (
            "Installment plans",
            ["plans"],
            [
                table(
                    ["plans", "count"],
                    [
                        [figures[k]["label"], shown(figures[k])]
                        for k in (
                            "plans_offered",
                            "plans_accepted",
                            "plans_completed",
                            "plans_defaulted",
                            "plan_success",
                        )
                    ]
                    + [[f"by term: {t} months", n] for t, n in plans["plans_by_term"].items()],
                )
            ],
        ),
        (
            "Relief: pauses and disputes",
            [],
            [
                "Operators pause a share of the portfolio for disaster relief (no charges, no ladder step, no "
                "contact while paused); disputers set part of a bill aside until an operator resolves it, upheld "
                "(credited back with its charges reversed) or rejected (owed again).",
                table(["figure", "value"], [[RELIEF_LABELS.get(k, k), v] for k, v in report.get("relief", {}).items()]),
            ],
        ),
        (
            "The portfolio's customers",
            [],
            [
                "How the simulated customers behave (the mix, `--mix`):",
                table(["behaviour", "accounts"], [[k, f"{v:,}"] for k, v in report["portfolio"]["behaviours"].items()]),
            ],
        ),
    ]


def engineering(report: dict[str, Any]) -> list[str]:
    """The invariants and timings, for the engineers: last, under their own heading."""
    inv, timings, speed = report["invariants"], report["timings"], report["speed"]
    return [
        "Every customer acted only through public events; every number above comes from the services' own "
        "tables or from the events seen on the bus. The invariants compare the two (docs/simulation.md).",
        table(["invariant", "result"], [[k, "pass" if v else "**FAIL**"] for k, v in inv.items()]),
        f"Speed: {timings['total_s']} s in all ({timings['startup_s']} s starting up), "
        f"{speed['simulated_days_per_s']} simulated days/s, {speed['events_per_s']} events/s.",
        table(["phase", "seconds"], [[k, v] for k, v in list(timings["phases_s"].items())[:12]]),
    ]


def title(report: dict[str, Any]) -> str:
    cfg = report["config"]
    return (
        f"Portfolio simulation: {cfg['accounts']:,} accounts, {cfg['days']} days from "
        f"{cfg['start_date']} (seed {cfg['seed']})"
    )


def markdown(report: dict[str, Any], images: dict[str, str]) -> str:
    parts = [f"# {title(report)}", ""]
    for heading, charts, blocks in sections(report):
        parts += [f"## {heading}", ""]
        for block in blocks:
            parts += [block, ""]
        for name in charts:
            parts += [f"![{name}]({images[name]})", ""]
    parts += ["## Engineering checks", ""]
    for block in engineering(report):
        parts += [block, ""]
    return "\n".join(parts)
