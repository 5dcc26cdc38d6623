"""``baitiao bench close``: one daily close of a large portfolio, beside two baselines.

In one run, on one PostgreSQL database:

1. build the portfolio with ``generate_series`` (default 1,000,000 accounts, 10%
   of them with an overdue bill at DPD 1 to 40, the rest with a paid bill);
2. (a) the baseline: hand-written set-based SQL doing the same writes as the
   close (accruals, ledger lines, bills, account levels, one outbox row per
   delinquent account), in one transaction, rolled back;
3. ours: the real ``daily_close`` job function (chunked, ladder, events), timed;
4. (b) a per-bill ORM loop with the pure domain rule on a sample of overdue
   bills, batched commits, rolled back, scaled up to the portfolio.

It prints the times and the ratios to the baseline; absolute times on a shared
machine are noise, the ratios are the figure.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import Session

from shared.clock import SHANGHAI, FixedClock

BUSINESS_DATE = date(2026, 3, 20)
STATEMENT = date(2026, 3, 1)


def _fresh_database(url: str) -> Engine:
    from baitiao import registry
    from shared.migrations import ensure_database, upgrade
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()
    ensure_database(url)
    upgrade(registry.definition("accounts"), url)
    return create_engine(url)


def build_portfolio(
    engine: Engine, accounts: int, overdue_share: float, dpd_spread: int = 40, business_date: date = BUSINESS_DATE
) -> int:
    """Accounts, one bill each (statement 03-01); every 1/share-th account is overdue, by
    1 to ``dpd_spread`` days yesterday (the day before ``business_date``)."""
    every = max(1, round(1 / overdue_share))
    yesterday = business_date.toordinal() - 1
    with engine.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO accounts (account_id, customer_id, identity_hash, opened_on, granted_limit_fen,
                                  credit_limit_fen, limit_cut, unpaid_principal_fen, credit_balance_fen, status,
                                  level, linked_level, max_dpd)
            SELECT 'acc-' || g, 'cust-' || g, md5(g::text), DATE '2025-01-01', 500000, 500000, false,
                   CASE WHEN g % :every = 0 THEN 100000 ELSE 0 END, 0, 'open', 0, 0, 0
            FROM generate_series(1, :n) AS g"""),
            {"n": accounts, "every": every},
        )
        conn.execute(
            text("""
            INSERT INTO bills (bill_id, account_pk, statement_date, due_date, due_ordinal, principal_fen,
                               charge_cap_fen, unpaid_principal_fen, unpaid_penalty_fen, unpaid_late_fee_fen,
                               penalty_charged_fen, late_fee_charged_fen, dpd, written_off_fen, origin,
                               last_closed_on, settled_on)
            SELECT 'bill-' || a.pk, a.pk, :statement, d.due, :ord0 - ((a.pk / :every) % :spread), 100000, 24000,
                   CASE WHEN a.pk % :every = 0 THEN 100000 ELSE 0 END, 0, 0, 0, 0, 0, 0, 'statement',
                   :yesterday, CASE WHEN a.pk % :every = 0 THEN NULL ELSE :statement END
            FROM accounts a
            CROSS JOIN LATERAL (SELECT CAST(:yesterday AS date) - ((a.pk / :every) % :spread)::int AS due) d"""),
            {
                "statement": STATEMENT,
                "ord0": yesterday,
                "every": every,
                "spread": dpd_spread,
                "yesterday": date.fromordinal(yesterday),
            },
        )
        # A steady state: yesterday's close already ran, so levels, flags and marks match yesterday's DPD.
        conn.execute(
            text("""
            UPDATE bills SET dpd = :yord - due_ordinal,
                   overdue_since = CASE WHEN :yord - due_ordinal >= 1 THEN due_date + 1 END,
                   bureau_marked_on = CASE WHEN :yord - due_ordinal >= 4 THEN due_date + 4 END
            WHERE unpaid_principal_fen > 0"""),
            {"yord": yesterday},
        )
        conn.execute(
            text("""
            UPDATE accounts a SET max_dpd = b.dpd,
                   level = CASE WHEN b.dpd >= 91 THEN 4 WHEN b.dpd >= 31 THEN 3 WHEN b.dpd >= 4 THEN 2
                                WHEN b.dpd >= 1 THEN 1 ELSE 0 END,
                   limit_cut = b.dpd >= 4,
                   credit_limit_fen = CASE WHEN b.dpd >= 4 THEN 250000 ELSE 500000 END,
                   last_overdue_on = CASE WHEN b.dpd >= 1 THEN :yesterday END
            FROM bills b WHERE b.account_pk = a.pk AND b.unpaid_principal_fen > 0"""),
            {"yesterday": date.fromordinal(yesterday)},
        )
        conn.execute(text("ANALYZE"))
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT count(*) FROM bills WHERE unpaid_principal_fen > 0")) or 0)


BASELINE_SQL = [
    # accruals: penalty (round half-up of 0.05%) and the late fee at DPD 4, clipped to the cap
    """INSERT INTO daily_accruals (bill_pk, business_date, account_pk, basis_fen, penalty_fen, late_fee_fen)
       SELECT pk, :d, account_pk, unpaid_principal_fen,
              LEAST((unpaid_principal_fen * 2 + 2000) / 4000, charge_cap_fen - penalty_charged_fen - late_fee_charged_fen),
              CASE WHEN :ord - due_ordinal = 4 THEN LEAST((unpaid_principal_fen * 2 + 100) / 200, 3000) ELSE 0 END
       FROM bills WHERE due_ordinal < :ord AND unpaid_principal_fen > 0 AND plan_id IS NULL""",
    """INSERT INTO ledger_entries (posting_id, account_pk, bill_pk, business_date, ledger_account, debit_fen,
                                   credit_fen, kind)
       SELECT 'base:' || bill_pk, account_pk, bill_pk, :d, x.acct, x.dr, x.cr, 'penalty_accrued'
       FROM daily_accruals CROSS JOIN LATERAL (VALUES ('customer_penalty', penalty_fen, 0),
                                                      ('penalty_income', 0, penalty_fen)) AS x(acct, dr, cr)
       WHERE business_date = :d""",
    """UPDATE bills b SET penalty_charged_fen = b.penalty_charged_fen + a.penalty_fen,
              unpaid_penalty_fen = b.unpaid_penalty_fen + a.penalty_fen,
              late_fee_charged_fen = b.late_fee_charged_fen + a.late_fee_fen,
              unpaid_late_fee_fen = b.unpaid_late_fee_fen + a.late_fee_fen,
              dpd = :ord - b.due_ordinal, overdue_since = coalesce(b.overdue_since, :d), last_closed_on = :d
       FROM daily_accruals a WHERE a.bill_pk = b.pk AND a.business_date = :d""",
    """UPDATE accounts a SET max_dpd = m.dpd,
              level = CASE WHEN m.dpd >= 91 THEN 4 WHEN m.dpd >= 31 THEN 3 WHEN m.dpd >= 4 THEN 2 ELSE 1 END
       FROM (SELECT account_pk, max(dpd) AS dpd FROM bills WHERE last_closed_on = :d GROUP BY account_pk) m
       WHERE m.account_pk = a.pk""",
    """INSERT INTO outbox (event_id, type, aggregate_id, payload, occurred_at)
       SELECT md5(random()::text || b.pk), 'account.delinquency.updated', a.account_id,
              json_build_object('account_id', a.account_id, 'business_date', :d, 'max_dpd', b.dpd,
                                'total_overdue', (b.unpaid_principal_fen + b.unpaid_penalty_fen) / 100.0,
                                'bills', json_build_array(json_build_object('bill_id', b.bill_id, 'dpd', b.dpd)))::text,
              now()
       FROM bills b JOIN accounts a ON a.pk = b.account_pk WHERE b.last_closed_on = :d""",
]


def run_baseline(engine: Engine, business_date: date = BUSINESS_DATE) -> float:
    """The close's hand-written SQL for ``business_date``, timed and rolled back."""
    params = {"d": business_date, "ord": business_date.toordinal()}
    with engine.connect() as conn:
        transaction = conn.begin()
        started = time.perf_counter()
        for statement in BASELINE_SQL:
            conn.execute(text(statement), params)
        elapsed = time.perf_counter() - started
        transaction.rollback()
    return elapsed


def run_ours(engine: Engine, url: str) -> tuple[float, dict[str, Any]]:
    from baitiao import registry
    from shared.bus.outbox import Outbox
    from shared.jobs import JobContext
    from shared.rules import ProductRules
    from shared.settings import Settings
    from services.accounts.daily_close import daily_close

    definition = registry.definition("accounts")
    clock = FixedClock(datetime(2026, 3, 20, 0, 30, tzinfo=SHANGHAI))
    state: dict[str, Any] = {}
    started = time.perf_counter()
    slices = 0
    while True:
        ctx = JobContext(
            "accounts",
            "daily-close",
            BUSINESS_DATE,
            None,
            engine,
            Outbox(definition.bus.outbox),
            ProductRules(),
            clock,
            Settings(accounts_db_url=url),
            state,
        )
        result = daily_close(ctx)
        slices += 1
        if not result.more:
            return time.perf_counter() - started, {**result.summary, "slices": slices}
        state = result.state


def run_orm_sample(engine: Engine, sample: int) -> float:
    """Seconds per overdue bill for a per-bill ORM loop with the pure rule, batched commits."""
    from services.accounts.domain.overdue import capped, daily_penalty, dpd
    from services.accounts.models import Bill, LedgerEntry
    from shared.money import from_fen, to_fen
    from shared.rules import ProductRules

    rules = ProductRules().overdue
    with Session(engine) as session:
        pks = session.scalars(select(Bill.pk).where(Bill.unpaid_principal_fen > 0).limit(sample)).all()
        started = time.perf_counter()
        for i, pk in enumerate(pks):
            bill = session.get(Bill, pk)
            assert bill is not None
            penalty = to_fen(
                capped(
                    daily_penalty(from_fen(bill.unpaid_principal_fen), rules),
                    from_fen(bill.principal_fen),
                    from_fen(bill.penalty_charged_fen + bill.late_fee_charged_fen),
                    rules,
                )
            )
            bill.unpaid_penalty_fen += penalty
            bill.penalty_charged_fen += penalty
            bill.dpd = dpd(BUSINESS_DATE, bill.due_date)
            session.add(
                LedgerEntry(
                    posting_id=f"orm:{pk}",
                    account_pk=bill.account_pk,
                    bill_pk=pk,
                    business_date=BUSINESS_DATE,
                    ledger_account="customer_penalty",
                    debit_fen=penalty,
                    credit_fen=0,
                    kind="penalty_accrued",
                )
            )
            session.add(
                LedgerEntry(
                    posting_id=f"orm:{pk}",
                    account_pk=bill.account_pk,
                    bill_pk=pk,
                    business_date=BUSINESS_DATE,
                    ledger_account="penalty_income",
                    debit_fen=0,
                    credit_fen=penalty,
                    kind="penalty_accrued",
                )
            )
            if i % 500 == 499:
                session.flush()
        session.flush()
        elapsed = time.perf_counter() - started
        session.rollback()
    return elapsed / max(len(pks), 1)


def run_close_benchmark(url: str, accounts: int, overdue_share: float, orm_sample: int) -> dict[str, Any]:
    engine = _fresh_database(url)
    started = time.perf_counter()
    overdue = build_portfolio(engine, accounts, overdue_share)
    build_s = time.perf_counter() - started
    baseline_s = run_baseline(engine)
    orm_per_bill = run_orm_sample(engine, orm_sample)
    ours_s, summary = run_ours(engine, url)
    with engine.connect() as conn:
        outbox_rows = int(conn.scalar(text("SELECT count(*) FROM outbox")) or 0)
    engine.dispose()
    orm_scaled = orm_per_bill * overdue
    return {
        "accounts": accounts,
        "overdue_bills": overdue,
        "portfolio_build_s": round(build_s, 1),
        "ours_s": round(ours_s, 2),
        "baseline_sql_s": round(baseline_s, 2),
        "orm_loop_scaled_s": round(orm_scaled, 1),
        "orm_sample_bills": orm_sample,
        "ratio_ours_to_baseline": round(ours_s / baseline_s, 2),
        "ratio_orm_to_ours": round(orm_scaled / ours_s, 1),
        "accounts_per_s": round(accounts / ours_s),
        "outbox_rows": outbox_rows,
        "close_summary": {k: summary[k] for k in ("bills_overdue", "penalty_accrued", "slices") if k in summary},
    }


def main_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, default=str)


__all__ = ["run_close_benchmark", "main_json", "Decimal"]
