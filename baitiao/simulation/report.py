"""The run's report: every figure, the invariants, report.json, report.md and its charts.

Figures come from the services' own tables (read-only) and from the events observed
on the bus; the invariants compare the two and check the ledger's arithmetic, so a
report whose counts disagree with the services' records says so instead of hiding it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from baitiao.simulation import charts
from baitiao.simulation.driver import SimulationRun
from baitiao.simulation.headline import headline
from baitiao.simulation.report_html import html_page
from baitiao.simulation.report_markdown import markdown
from baitiao.simulation.records import accounts_figures, collections_figures, restructuring_figures
from shared.db import make_engine

TIMING_KEYS = ("timings", "speed")  # what differs between two runs of the same seed


def build_report(sim: SimulationRun) -> dict[str, Any]:
    engines = {s: make_engine(u) for s, u in sim.run.db_urls.items()}
    try:
        acc = accounts_figures(engines["accounts"])
        col = collections_figures(engines["collections"])
        res = restructuring_figures(engines["restructuring"])
    finally:
        for engine in engines.values():
            engine.dispose()
    tally = sim.tally
    invariants = check_invariants(sim, acc, col, res)
    money = acc["money"]
    cfg = sim.config
    report: dict[str, Any] = {
        "config": {
            "accounts": cfg.accounts,
            "days": cfg.days,
            "seed": cfg.seed,
            "start_date": cfg.start_date.isoformat(),
            "mix": cfg.mix.normalised(),
        },
        "environment": {
            **sim.run.describe(),
            "workers_per_service": cfg.workers_per_service,
            "events_redelivered": sim.redelivered,
            **({"faults": sim.drill.describe()} if sim.drill else {}),
        },
        "portfolio": {"behaviours": sim.portfolio.behaviour_counts()},
        "events": {
            "published_by_customers": sim.published,
            "observed": sim.observed,
            "observed_by_type": dict(sorted(tally.types.items())),
        },
        "purchases": {
            "requested": tally.types.get("purchase.requested", 0),
            **dict(tally.purchases),
            "declined_by_reason": dict(sorted(tally.declines.items())),
        },
        "money": money,
        "ledger": acc["ledger"],
        "accounts": acc["accounts"],
        "bills": {
            "by_origin": acc["bills"],
            "issued_events": len(tally.bills_issued),
            "charged_off": len(tally.charged_off),
        },
        "repayments": {
            "payments_sent": _payments_sent(sim),
            "applied": acc["repayments"]["applied"],
            "applied_amount": acc["repayments"]["applied_amount"],
            "rejected_by_reason": dict(acc["repayments"]["rejected"]),
        },
        "delinquency": {
            "timeline": tally.timeline,
            "roll_rates": tally.roll_rates(),
            "vintages": tally.vintages({c.account_id: c.opened_on for c in sim.portfolio.customers}),
        },
        "collections": {
            k: v for k, v in col.items() if k not in ("task_ids", "contacts_outside_window", "contact_days")
        },
        "relief": {k: v for k, v in acc["relief"].items() if k != "quiet_windows"},
        "contacts": {
            "reminders_by_template": dict(sorted(tally.reminders.items())),
            "suppressed_events_by_reason": dict(sorted(tally.suppressed.items())),
            "tasks_created_by_kind": dict(sorted(tally.tasks.items())),
        },
        "plans": {
            "requests": dict(sorted(tally.plan_requests.items())),
            "events": dict(sorted(tally.plan_events.items())),
            **{k: v for k, v in res.items() if k != "plan_ids"},
        },
        "daily_money": tally.daily_money,
        "jobs": {name: _job_totals(rows) for name, rows in sim.job_summaries.items()},
        "invariants": invariants,
        "timings": {
            "total_s": round(sim.timings.total_s, 2),
            "startup_s": round(sim.timings.startup_s, 2),
            "phases_s": {k: round(v, 2) for k, v in sorted(sim.timings.phases.items(), key=lambda kv: -kv[1])},
        },
        "speed": {
            "simulated_days_per_s": round(cfg.days / max(sim.timings.total_s - sim.timings.startup_s, 1e-9), 3),
            "events_per_s": round((sim.published + sim.observed) / max(sim.timings.total_s, 1e-9), 1),
        },
    }
    return _plain(report)


def _payments_sent(sim: SimulationRun) -> int:
    return sum(c.payments for c in sim.portfolio.customers)


def _job_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Numeric fields of a job's daily summaries, summed over the run."""
    totals: dict[str, Any] = {"runs": len(rows)}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("slices",):
                totals[key] = totals.get(key, 0) + value
    return totals


def check_invariants(
    sim: SimulationRun, acc: dict[str, Any], col: dict[str, Any], res: dict[str, Any]
) -> dict[str, bool]:
    tally, money, ledger = sim.tally, acc["money"], acc["ledger"]
    observed_payments = {p for p in tally.payments_applied if not p.startswith("credit-balance-")}
    sent = {f"sim-pay-{c.index + 1:06d}-{n:04d}" for c in sim.portfolio.customers for n in range(1, c.payments + 1)}
    billed_gross = (
        money["purchases_posted"]
        + money["penalty_charged"]
        - money["penalty_reversed"]
        + money["late_fees_charged"]
        - money["late_fees_reversed"]
        + money["plan_fees"]
    )
    identity = billed_gross - money["repaid"] - money["waived"] - (money["written_off"] - money["recovered"])
    approved_events = tally.purchases.get("approved", 0)
    return {
        "ledger_balances": ledger["total_debit"] == ledger["total_credit"] and ledger["unbalanced_postings"] == 0,
        "money_conserved": identity == money["outstanding"],
        "repaid_matches_repayments": money["repaid"] == acc["repayments"]["applied_amount"] == tally.applied_amount,
        "every_payment_applied_once": (
            all(len(ids) == 1 for ids in tally.payments_applied.values())
            and observed_payments == acc["repayments"]["applied_ids"]
            and acc["repayments"]["payment_ids"] == sent
        ),
        "contacts_inside_window": col["contacts_outside_window_count"] == 0,
        "contacts_within_caps": (
            col["sms_daily_cap_exceeded"] == 0
            and col["call_daily_cap_exceeded"] == 0
            and col["call_weekly_cap_exceeded"] == 0
        ),
        "bills_agree": set(tally.bills_issued) == acc["bills_issued_ids"],
        "purchases_agree": (
            approved_events == acc["purchases"]["approved"]
            and approved_events + tally.purchases.get("declined", 0) == tally.types.get("purchase.requested", 0)
        ),
        "reminders_agree": len(tally.reminder_ids) == col["sms_sent"] == col["sms_messages"],
        "tasks_agree": tally.task_ids == col["task_ids"],
        "plans_agree": tally.plans_activated == res["plan_ids"],
        "accounts_agree": acc["accounts"]["total"] == sim.config.accounts == tally.types.get("credit.line.opened", 0),
        "no_dead_letters": acc["dead_letters"] == col["dead_letters"] == res["dead_letters"] == 0,
        "no_contact_while_paused_or_disputed": not contacts_in_quiet_windows(
            acc["relief"]["quiet_windows"], col["contact_days"]
        ),
    }


def contacts_in_quiet_windows(windows: list[Any], contacts: list[Any]) -> list[Any]:
    """The collection contacts (of an overdue stage) made on a date inside a pause or an
    open dispute of the account: none may be."""
    by_account: dict[str, list[Any]] = {}
    for account, first, last in windows:
        by_account.setdefault(account, []).append((first, last))
    return [
        (account, day)
        for account, day in contacts
        if any(first <= day <= last for first, last in by_account.get(account, ()))
    ]


def _plain(value: Any) -> Any:
    """JSON-ready: Decimal as a 2-decimal string, sets as sorted lists."""
    if isinstance(value, Decimal):
        return str(value.quantize(Decimal("0.01")))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    return value


def without_timings(report: dict[str, Any]) -> dict[str, Any]:
    """The report minus what legitimately differs between two runs of one seed."""
    drop = set(TIMING_KEYS) | {"environment"}
    return {k: v for k, v in report.items() if k not in drop}


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write report.json (with its headline, derived from the figures), the charts,
    report.md and report.html (charts embedded); returns the JSON and Markdown paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report["headline"] = _plain(headline(report))
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    images = charts.draw_all(report, out_dir)
    md_path = out_dir / "report.md"
    md_path.write_text(markdown(report, images), encoding="utf-8")
    (out_dir / "report.html").write_text(html_page(report, out_dir, images), encoding="utf-8")
    return json_path, md_path
