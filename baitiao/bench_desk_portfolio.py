"""The desk benchmark's portfolio: ``bench night``'s, every account overdue, and on top of it
what a desk reads (set-based: ``generate_series``, a statement per table and chunk).

Accounts and the cases are :func:`baitiao.bench_night_portfolio.seed_portfolio`'s with every
account overdue, 0 to 119 days yesterday: account ``g`` is ``g % 120`` days past due, so
every account but each 120th holds an open case, spread evenly over every stage. On top:

- accounts: each bill's purchase and its penalty interest as ledger postings;
- collections: one open task a case (a call, an agency referral or a legal case by stage;
  what is owed varies by account so the order is not the DPD's alone), a done call before
  it for the cases past a week, three SMS sent (contacts and their messages), a pending
  promise on every fourth case and a kept one on the next;
- the desk: a supervisor and ``collectors`` collectors, every case's account assigned to
  one of them in turn.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, text

from baitiao.bench_close import BUSINESS_DATE
from baitiao.bench_night_portfolio import seed_portfolio

SPREAD = 120  # DPD 0 to 119 yesterday: account g at g % 120
CHUNK = 25_000  # cases a statement writes
SUPERVISOR = "sup-1"


def accounts_for(cases: int) -> int:
    """The accounts whose portfolio holds exactly ``cases`` open cases (each 120th account
    is at DPD 0 and has none)."""
    return cases + (cases - 1) // (SPREAD - 1)


def collector_name(n: int) -> str:
    return f"col-{n}"


# Each statement runs for the cases with pk in [lo, hi] (the cases' pks run from 1 in a fresh
# database, in the accounts' order).
_COLLECTIONS = [
    """INSERT INTO collector_tasks (task_id, account_id, kind, stage, dpd, amount_fen, trigger, created_on,
                                    due_by, status)
       SELECT 'task-' || c.pk || '-open', c.account_id,
              CASE WHEN c.max_dpd > 90 THEN 'legal' WHEN c.max_dpd > 60 THEN 'agency' ELSE 'call' END,
              c.stage, c.max_dpd, 10000 + (c.pk * 7919) % 990000, 'strategy', :yesterday,
              :yesterday + (1 + c.pk % 3)::int, 'open'
       FROM cases c WHERE c.pk BETWEEN :lo AND :hi""",
    """INSERT INTO collector_tasks (task_id, account_id, kind, stage, dpd, amount_fen, trigger, created_on,
                                    due_by, status, outcome, outcome_at)
       SELECT 'task-' || c.pk || '-done', c.account_id, 'call', c.stage, c.max_dpd - 7,
              10000 + (c.pk * 7919) % 990000, 'strategy', :yesterday - 7, :yesterday - 6, 'done', 'no_answer',
              :stamp
       FROM cases c WHERE c.pk BETWEEN :lo AND :hi AND c.max_dpd > 7""",
    """INSERT INTO contact_attempts (plan_key, account_id, business_date, channel, kind, template, stage, dpd,
                                     trigger, status, planned_for, attempted_at, sent_at, deferrals, send_attempts,
                                     message_id)
       SELECT c.account_id || '|' || (:yesterday - d.n) || '|sms|grace', c.account_id, :yesterday - d.n, 'sms',
              'sms', 'grace', c.stage, greatest(c.max_dpd - d.n, 0), 'scheduled', 'sent', :stamp, :stamp, :stamp,
              0, 1, 'sms-' || c.pk || '-' || d.n
       FROM cases c CROSS JOIN (VALUES (0), (1), (2)) AS d(n) WHERE c.pk BETWEEN :lo AND :hi""",
    """INSERT INTO sms_messages (message_id, idempotency_key, contact_id, account_id, template, phone_masked, text,
                                 segments, status, gateway_attempts, sent_at, reported_at)
       SELECT a.message_id, a.message_id, a.id, a.account_id, a.template, '138****0000', '【白条】B**: 您的账单已逾期',
              1, 'delivered', 1, :stamp, :stamp
       FROM contact_attempts a JOIN cases c ON c.account_id = a.account_id WHERE c.pk BETWEEN :lo AND :hi""",
    """INSERT INTO promises (account_id, task_id, recorded_on, promised_date, promised_amount_fen, pause_until,
                             status, decided_on)
       SELECT c.account_id, 'task-' || c.pk || '-done',
              :yesterday - 7, :yesterday - 7 + (3 + c.pk % 9)::int, 50000, :yesterday - 7 + (3 + c.pk % 9)::int,
              CASE WHEN c.pk % 4 = 0 THEN 'pending' ELSE 'kept' END,
              CASE WHEN c.pk % 4 = 1 THEN :yesterday - 3 END
       FROM cases c WHERE c.pk BETWEEN :lo AND :hi AND c.pk % 4 IN (0, 1) AND c.max_dpd > 7""",
]

_ACCOUNTS = [
    """INSERT INTO ledger_entries (posting_id, account_pk, bill_pk, business_date, ledger_account, debit_fen,
                                   credit_fen, kind)
       SELECT x.posting || b.pk, b.account_pk, b.pk, x.on_day, x.account, x.debit, x.credit, x.kind
       FROM bills b CROSS JOIN LATERAL (VALUES
              ('purchase:', DATE '2026-02-10', 'customer_principal', b.principal_fen, 0, 'purchase'),
              ('purchase:', DATE '2026-02-10', 'merchant_payable', 0, b.principal_fen, 'purchase'),
              ('penalty:', :yesterday, 'customer_penalty', 50 * b.dpd, 0, 'penalty_accrued'),
              ('penalty:', :yesterday, 'penalty_income', 0, 50 * b.dpd, 'penalty_accrued')
       ) AS x(posting, on_day, account, debit, credit, kind)
       WHERE b.pk BETWEEN :lo AND :hi""",
]


def settled(engine: Engine) -> None:
    """``VACUUM ANALYZE``: the tables as autovacuum leaves them after a day's writes
    (statistics, and the visibility map that lets a count be read off an index)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def _chunks(total: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + CHUNK - 1, total)) for lo in range(1, total + 1, CHUNK)]


def seed_desk_portfolio(engines: dict[str, Engine], desk: Engine, cases: int, collectors: int, password: str) -> int:
    """Write the portfolio into the three services' (migrated, empty) databases and the
    desk's (upgraded, empty); returns the accounts."""
    accounts = accounts_for(cases)
    seed_portfolio(engines, accounts, 1.0, SPREAD, plan_share=0)
    params = {"yesterday": BUSINESS_DATE - timedelta(days=1), "stamp": datetime(2026, 3, 19, 2, 0, tzinfo=timezone.utc)}
    for service, statements, rows in (("collections", _COLLECTIONS, cases), ("accounts", _ACCOUNTS, accounts)):
        for lo, hi in _chunks(rows):
            with engines[service].begin() as conn:
                for statement in statements:
                    conn.execute(text(statement), {**params, "lo": lo, "hi": hi})
        settled(engines[service])
    _seed_desk(desk, accounts, collectors, password)
    return accounts


def _seed_desk(desk: Engine, accounts: int, collectors: int, password: str) -> None:
    """A supervisor and the collectors (one password hash for all: scrypt takes 50 ms a
    hash), and every case's account assigned to a collector in turn."""
    from baitiao.desk import state
    from baitiao.desk.access import hash_password

    hashed = hash_password(password)
    now = state.utc_now()
    users = [(SUPERVISOR, "supervisor")] + [(collector_name(n), "collector") for n in range(1, collectors + 1)]
    with desk.begin() as conn:
        conn.execute(
            state.users.insert(),
            [{"username": u, "password_hash": hashed, "role": r, "active": True, "created_at": now} for u, r in users],
        )
        conn.execute(
            text("""INSERT INTO desk_assignments (account_id, collector, assigned_by, assigned_at)
                    SELECT 'acc-' || g, 'col-' || (1 + g % :collectors), :by, :now
                    FROM generate_series(1, :n) AS g WHERE g % :spread <> 0"""),
            {"n": accounts, "collectors": collectors, "by": SUPERVISOR, "now": now, "spread": SPREAD},
        )
    settled(desk)
