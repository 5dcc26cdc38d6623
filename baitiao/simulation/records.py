"""Figures read from the services' own tables (read-only SQL), one function per service.

Money is integer fen in the tables; it leaves here as ``Decimal`` yuan. SQLite hands
back naive datetimes that are UTC (the services store ``utc(...)``); PostgreSQL
hands back aware ones.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from shared.clock import SHANGHAI
from shared.money import from_fen


def _rows(engine: Engine, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql)).all())


def _scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def _local(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(SHANGHAI)


def _day(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


# --- accounts ------------------------------------------------------------------------------


def accounts_figures(engine: Engine) -> dict[str, Any]:
    ledger = {
        r[0]: (int(r[1] or 0), int(r[2] or 0))
        for r in _rows(
            engine, "SELECT ledger_account, SUM(debit_fen), SUM(credit_fen) FROM ledger_entries GROUP BY ledger_account"
        )
    }

    def debit_net(account: str) -> Decimal:
        d, c = ledger.get(account, (0, 0))
        return from_fen(d - c)

    def debited(account: str) -> Decimal:
        return from_fen(ledger.get(account, (0, 0))[0])

    def credited(account: str) -> Decimal:
        return from_fen(ledger.get(account, (0, 0))[1])

    unbalanced = _scalar(
        engine,
        "SELECT COUNT(*) FROM (SELECT posting_id FROM ledger_entries GROUP BY posting_id "
        "HAVING SUM(debit_fen) <> SUM(credit_fen)) AS u",
    )
    total_debit = sum(d for d, _ in ledger.values())
    total_credit = sum(c for _, c in ledger.values())
    receivables = sum(
        (debit_net(a) for a in ("customer_principal", "customer_penalty", "customer_late_fee", "plan_receivable")),
        Decimal("0"),
    )
    repayments = _rows(engine, "SELECT payment_id, amount, status, reason FROM repayments")
    applied = [r for r in repayments if r[2] == "applied"]
    bills = _rows(
        engine,
        "SELECT origin, COUNT(*), SUM(principal_fen), SUM(unpaid_principal_fen), "
        "SUM(unpaid_penalty_fen), SUM(unpaid_late_fee_fen), SUM(written_off_fen) FROM bills GROUP BY origin",
    )
    by_origin = {r[0]: {"bills": int(r[1]), "principal": from_fen(int(r[2] or 0))} for r in bills}
    return {
        "ledger": {
            "total_debit": from_fen(total_debit),
            "total_credit": from_fen(total_credit),
            "unbalanced_postings": int(unbalanced or 0),
            "postings": int(_scalar(engine, "SELECT COUNT(DISTINCT posting_id) FROM ledger_entries") or 0),
            "balances": {a: debit_net(a) for a in sorted(ledger)},
        },
        "money": {
            "purchases_posted": credited("merchant_payable") - debited("merchant_payable"),
            "billed": sum((v["principal"] for v in by_origin.values()), Decimal("0")),
            "billed_statements": by_origin.get("statement", {}).get("principal", Decimal("0")),
            "repaid": debited("cash"),
            "penalty_charged": credited("penalty_income"),
            "penalty_reversed": debited("penalty_income"),
            "late_fees_charged": credited("fee_income"),
            "late_fees_reversed": debited("fee_income"),
            "plan_fees": credited("plan_fee_income") - debited("plan_fee_income"),
            "waived": debit_net("waiver_expense"),
            "written_off": debited("write_off_expense"),
            "recovered": credited("write_off_recovery"),
            "receivables": receivables,
            "credit_balances": -debit_net("credit_balance"),
            "outstanding": receivables + debit_net("credit_balance"),
        },
        "bills": {o: v["bills"] for o, v in by_origin.items()},
        "repayments": {
            "rows": len(repayments),
            "applied": len(applied),
            "rejected": Counter(r[3] for r in repayments if r[2] != "applied"),
            "applied_amount": sum((Decimal(r[1]) for r in applied), Decimal("0")),
            "payment_ids": {r[0] for r in repayments},
            "applied_ids": {r[0] for r in applied},
        },
        "purchases": {"approved": int(_scalar(engine, "SELECT COUNT(*) FROM purchases") or 0)},
        "accounts": {
            "total": int(_scalar(engine, "SELECT COUNT(*) FROM accounts") or 0),
            "closed": int(_scalar(engine, "SELECT COUNT(*) FROM accounts WHERE status = 'closed'") or 0),
            "limit_cut": int(_scalar(engine, "SELECT COUNT(*) FROM accounts WHERE limit_cut") or 0),
            "reported_to_bureau": int(_scalar(engine, "SELECT COUNT(DISTINCT account_pk) FROM bureau_marks") or 0),
        },
        "dead_letters": int(_scalar(engine, "SELECT COUNT(*) FROM dead_letters") or 0),
        "relief": _relief(engine),
        # statements and plan defaults both issue a bill (and announce it with bill.issued)
        "bills_issued_ids": {r[0] for r in _rows(engine, "SELECT bill_id FROM bills")},
    }


def _relief(engine: Engine) -> dict[str, Any]:
    """Pauses and disputes (RULES 2.8, 4.6): counts for the report, and the windows in which
    nobody may be contacted (a pause: the dates after it started through its last paused
    date; a dispute: from its opening through its resolution)."""
    pauses = _rows(
        engine,
        "SELECT a.account_id, h.added_on, h.lifted_on FROM restriction_history h "
        "JOIN accounts a ON a.pk = h.account_pk WHERE h.measure = 'delinquency_paused'",
    )
    disputes = _rows(
        engine,
        "SELECT a.account_id, d.opened_on, d.resolved_on, d.status, d.outcome, d.credited_fen, d.alerted_on "
        "FROM disputes d JOIN accounts a ON a.pk = d.account_pk",
    )
    never = date(9999, 12, 31)
    return {
        "pauses": len(pauses),
        "pauses_resumed": sum(1 for p in pauses if p[2] is not None),
        "disputes": len(disputes),
        "disputes_open": sum(1 for d in disputes if d[3] == "open"),
        "disputes_by_outcome": dict(sorted(Counter(d[4] for d in disputes if d[4]).items())),
        "disputes_credited": from_fen(sum(int(d[5] or 0) for d in disputes)),
        "disputes_past_service_level": sum(1 for d in disputes if d[6] is not None),
        "quiet_windows": [(p[0], _day(p[1]) + timedelta(days=1), _day(p[2]) if p[2] else never) for p in pauses]
        + [(d[0], _day(d[1]), _day(d[2]) if d[2] else never) for d in disputes],
    }


# --- collections ---------------------------------------------------------------------------


def collections_figures(engine: Engine) -> dict[str, Any]:
    contacts = _rows(engine, "SELECT account_id, channel, status, reason, sent_at, attempted_at FROM contact_attempts")
    by_channel: Counter[str] = Counter()
    suppressed: Counter[str] = Counter()
    outside_window: list[str] = []
    sms_per_day: Counter[tuple[str, date]] = Counter()
    calls: dict[str, list[datetime]] = defaultdict(list)
    for account, channel, status, reason, sent_at, attempted_at in contacts:
        by_channel[f"{channel}:{status}"] += 1
        if status == "suppressed":
            suppressed[reason or "?"] += 1
        when = _local(sent_at if channel == "sms" else attempted_at)
        if when is None or status not in ("sent", "attempted"):
            continue
        if not (8 * 60 <= when.hour * 60 + when.minute <= 21 * 60) or (when.hour == 21 and when.second > 0):
            outside_window.append(f"{channel}@{when.isoformat()}")
        if channel == "sms":
            sms_per_day[(account, when.date())] += 1
        else:
            calls[account].append(when)
    call_day_excess = call_week_excess = 0
    for times in calls.values():
        days = Counter(t.date() for t in times)
        call_day_excess += sum(1 for n in days.values() if n > 3)
        ordered = sorted(t.date() for t in times)
        for i, start in enumerate(ordered):
            if sum(1 for d in ordered[i:] if d < start + timedelta(days=7)) > 7:
                call_week_excess += 1
                break
    cases = _rows(engine, "SELECT account_id, status, closed_reason, stage, COALESCE(grade, 'C') FROM cases")
    grade_of = {r[0]: r[4] for r in cases}
    history = _rows(engine, "SELECT account_id, stage FROM case_stage_history")
    closures = _rows(engine, "SELECT account_id, reason, stage FROM case_closures")
    contact_days = [
        (r[0], _day(r[1]))
        for r in _rows(
            engine,
            "SELECT account_id, business_date FROM contact_attempts "
            "WHERE status IN ('sent', 'attempted', 'task_created') AND stage <> 'pre_due'",
        )
    ]
    return {
        "contact_days": contact_days,
        "contacts_by_channel_status": dict(sorted(by_channel.items())),
        "suppressed_by_reason": dict(sorted(suppressed.items())),
        "sms_sent": sum(v for k, v in by_channel.items() if k == "sms:sent"),
        "sms_messages": int(_scalar(engine, "SELECT COUNT(*) FROM sms_messages") or 0),
        "call_attempts": sum(len(v) for v in calls.values()),
        "contacts_outside_window": outside_window[:20],
        "contacts_outside_window_count": len(outside_window),
        "sms_daily_cap_exceeded": sum(1 for n in sms_per_day.values() if n > 1),
        "call_daily_cap_exceeded": call_day_excess,
        "call_weekly_cap_exceeded": call_week_excess,
        "cases": {
            "total": len(cases),
            "open": sum(1 for c in cases if c[1] == "open"),
            "closed_by_reason": dict(Counter(c[2] for c in cases if c[1] == "closed")),
        },
        "cure_rates": cure_rates(history, closures, grade_of),
        "tasks_by_kind": dict(Counter(r[0] for r in _rows(engine, "SELECT kind FROM collector_tasks"))),
        "task_ids": {r[0] for r in _rows(engine, "SELECT task_id FROM collector_tasks")},
        "promises_by_status": dict(Counter(r[0] for r in _rows(engine, "SELECT status FROM promises"))),
        "dead_letters": int(_scalar(engine, "SELECT COUNT(*) FROM dead_letters") or 0),
    }


def cure_rates(history: list[Any], closures: list[Any], grade_of: dict[str, str]) -> dict[str, Any]:
    """Cure rate per stage: cases closed as cured while in the stage, over entries into it;
    the same split by the case's risk grade (C until restructuring assessed it)."""
    entered: Counter[str] = Counter()
    entered_grade: Counter[tuple[str, str]] = Counter()
    for account, stage in history:
        entered[stage] += 1
        entered_grade[(stage, grade_of.get(account, "C"))] += 1
    cured: Counter[str] = Counter()
    cured_grade: Counter[tuple[str, str]] = Counter()
    for account, reason, stage in closures:
        if reason == "cured" and stage:
            cured[stage] += 1
            cured_grade[(stage, grade_of.get(account, "C"))] += 1

    def rate(n: int, d: int) -> dict[str, Any]:
        return {"cured": n, "entered": d, "rate": round(n / d, 4) if d else None}

    by_stage = {s: rate(cured[s], entered[s]) for s in sorted(entered, key=_stage_order)}
    by_grade: dict[str, dict[str, Any]] = defaultdict(dict)
    for (stage, grade), d in sorted(entered_grade.items(), key=lambda kv: (_stage_order(kv[0][0]), kv[0][1])):
        by_grade[stage][grade] = rate(cured_grade[(stage, grade)], d)
    return {"by_stage": by_stage, "by_stage_and_grade": dict(by_grade)}


_STAGES = ("pre_due", "grace", "early", "mid", "late", "legal")


def _stage_order(stage: str) -> int:
    return _STAGES.index(stage) if stage in _STAGES else len(_STAGES)


# --- restructuring -------------------------------------------------------------------------


def restructuring_figures(engine: Engine) -> dict[str, Any]:
    requests = _rows(engine, "SELECT outcome, reason FROM offer_requests")
    plans = _rows(engine, "SELECT status, term, principal_fen, plan_id FROM plans")
    return {
        "offer_requests": dict(Counter(r[0] if r[0] != "ineligible" else f"ineligible:{r[1]}" for r in requests)),
        "plans_by_status": dict(Counter(r[0] for r in plans)),
        "plans_by_term": dict(sorted(Counter(str(r[1]) for r in plans).items(), key=lambda kv: int(kv[0]))),
        "restructured_principal": from_fen(sum(int(r[2]) for r in plans)),
        "plan_ids": {r[3] for r in plans},
        "grades": dict(
            Counter(r[0] for r in _rows(engine, "SELECT last_grade FROM account_views WHERE last_grade IS NOT NULL"))
        ),
        "dead_letters": int(_scalar(engine, "SELECT COUNT(*) FROM dead_letters") or 0),
    }
