"""``repayment.received``: runs of every length leave the same state.

``repayment_received_batch`` applies a run of repayments one by one, in message order;
what every payment would look up again (the payment ids already applied, the run's
accounts, locked in pk order, and the last daily close) it reads once for the whole run.
A run of one is the per-event path.

The accounts have real bills (statements of February and March, daily closes up to 16
March: some lines are overdue, one is frozen and holds its sibling). The same wire bodies
go into fresh databases, on PostgreSQL and on SQLite, all through the registered
handlers: once one event per transaction, then in one batch, in batches of three and in
one batch with a poison event (the guarded retry pass), every ORM object kept alive
(``objects_kept_alive``: a stale object cannot hide behind the garbage collector). Every
row of the accounts service and every event written to its outbox, with its causation and
correlation ids, must be the same (``tests/support/batch_equivalence.py``), and as the
scenario says.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from services.accounts.models import Account
from services.accounts.registry import HANDLERS
from services.accounts.repayments import repayment_received_batch
from shared.bus.handling import BatchHandler
from shared.clock import SHANGHAI
from tests.support.batch_equivalence import (
    Databases,
    Event,
    Poison,
    Service,
    bodies,
    databases_fixture,
    objects_kept_alive,
)
from tests.support.service_driver import run_job

pytestmark = pytest.mark.integration

SETUP = datetime(2026, 1, 10, 9, 0, tzinfo=SHANGHAI)
NIGHT = datetime(2026, 3, 16, 20, 0, tzinfo=SHANGHAI)  # after the close of 16 March
ON_TIME = "2026-03-16T19:00:00+08:00"


ACCOUNTS = Service("accounts")
databases = databases_fixture("accounts")


def test_registered_handler_is_the_batch_one() -> None:
    handler = HANDLERS["repayment.received"]
    assert isinstance(handler, BatchHandler) and handler.fn is repayment_received_batch


# --- scenario ---------------------------------------------------------------------------------


def _grant(account: str, identity: str | None = None) -> Event:
    return "credit.line.granted", {
        "account_id": account,
        "customer_id": f"c-{account}",
        "identity_hash": identity or f"identity-{account}",
        "credit_limit": "5000.00",
        "name": "张三",
        "phone": "13800005678",
        "opened_on": "2025-06-01",
    }


def _buy(account: str, purchase_id: str, amount: str, requested_at: str) -> Event:
    return "purchase.requested", {
        "purchase_id": purchase_id,
        "account_id": account,
        "amount": amount,
        "merchant": "jd-mall",
        "requested_at": requested_at,
    }


def _repay(account: str, payment_id: str, amount: str, paid_at: str = ON_TIME, currency: str = "CNY") -> Event:
    return "repayment.received", {
        "payment_id": payment_id,
        "account_id": account,
        "amount": amount,
        "currency": currency,
        "paid_at": paid_at,
        "channel": "app",
    }


def _setup() -> list[Event]:
    january, february = "2026-01-14T12:00:00+08:00", "2026-02-14T12:00:00+08:00"
    return [
        _grant("FRZ", "identity-F"),
        _grant("SIB", "identity-F"),
        _grant("CUR"),
        _grant("PAR"),
        _grant("TWO"),
        _grant("LAT"),
        _grant("OVR"),
        _grant("DUP"),
        _buy("FRZ", "frz-p", "800.00", january),  # billed 1 Feb, due 10 Feb: DPD 34 on 16 Mar, frozen
        _buy("CUR", "cur-p", "1000.00", february),  # billed 1 Mar, due 10 Mar: DPD 6, reported, limit cut
        _buy("PAR", "par-p", "1000.00", february),
        _buy("TWO", "two-p", "2000.00", february),
        _buy("LAT", "lat-p", "3000.00", february),
        _buy("DUP", "dup-p", "500.00", february),
        _buy("OVR", "ovr-p", "200.00", "2026-03-05T12:00:00+08:00"),  # not billed yet
    ]


def _bills_and_closes(engine: Engine) -> None:
    """Statements of 1 Feb and 1 Mar, the closes of 1 Mar and of 2..16 Mar, then a payment."""
    run_job("accounts", engine, "statements", date(2026, 2, 1))
    run_job("accounts", engine, "statements", date(2026, 3, 1))
    run_job("accounts", engine, "daily-close", date(2026, 3, 1))  # the first close: that date only
    run_job("accounts", engine, "daily-close", date(2026, 3, 16))
    ACCOUNTS.apply(
        engine,
        HANDLERS,
        bodies([_repay("DUP", "old-1", "100.00", "2026-03-16T09:00:00+08:00")], NIGHT - timedelta(hours=10)),
        1,
    )


def _night() -> list[Event]:
    late = "2026-03-12T20:00:00+08:00"  # in grace, told after the closes of 13..16 March
    return [
        _repay("CUR", "cur-1", "1100.00"),  # pays everything (1013.00), the rest a credit balance: cured
        _repay("PAR", "par-1", "300.00"),  # partial: still overdue
        _repay("TWO", "two-1", "500.00"),  # two payments of one account in one run
        _repay("LAT", "lat-1", "1000.00", late),  # a late notice: later closes re-judged
        _repay("TWO", "two-2", "2000.00"),  # ... the second one cures
        _repay("CUR", "cur-1b", "5.00"),  # cured earlier in the run: judged on the level that cure left
        _repay("LAT", "lat-2", "2500.00", "2026-03-13T10:00:00+08:00"),  # a second late notice of the account
        _repay("X", "x-1", "10.00"),  # unknown_account
        _repay("PAR", "rej-1", "10.00", currency="USD"),  # unsupported_currency
        _repay("PAR", "rej-2", "0.00"),  # non_positive_amount
        _repay("PAR", "rej-3", "-5.00"),  # non_positive_amount
        _repay("PAR", "rej-4", "10.001"),  # too_many_decimals
        _repay("PAR", "rej-1", "10.00"),  # the id again, now valid: it was received (rejected), that answer again
        _repay("DUP", "dup-1", "50.00"),
        _repay("DUP", "dup-1", "50.00"),  # again in the run: applied once, its first answer again
        _repay("DUP", "old-1", "100.00"),  # applied before the run: applied once, its first answer again
        _repay("OVR", "ovr-1", "300.00"),  # no bill: all of it a credit balance
        _repay("FRZ", "frz-1", "1000.00"),  # cures the frozen account: its sibling's linked restriction lifts
        _repay("SIB", "sib-1", "10.00"),  # the sibling, later in the same run, judged on what that lifted
        _buy("CUR", "cur-buy", "100.00", ON_TIME),  # cured just before in the batch: approved
        _buy("SIB", "sib-buy", "100.00", ON_TIME),  # no longer held by FRZ: approved
        _repay("CUR", "cur-2", "50.00"),  # a run after the purchases reads the account they changed
        _repay("PAR", "par-1", "300.00"),  # applied by an earlier run of the same batch: its first answer again
    ]


# --- tests ------------------------------------------------------------------------------------


def _prepared(databases: Databases) -> Engine:
    """The accounts with their bills, closes and a payment: made once, copied for every pass."""
    return ACCOUNTS.prepared(databases, HANDLERS, bodies(_setup(), SETUP), _bills_and_closes)


def test_batches_give_the_same_rows_and_replies_as_one_by_one(databases: Databases) -> None:
    night = bodies(_night(), NIGHT)
    template = _prepared(databases)
    expected = ACCOUNTS.assert_batches_agree(
        lambda: databases.copy(template),
        "repayment.received",
        night,
        one_batch=[19, 2],  # repayments | cur-buy sib-buy | cur-2 par-1
        poison=Poison.plan_completed(5, "CUR", NIGHT),
        guarded=[5] + [1] * 21,
    )
    _what_the_scenario_says(expected, night)


def _what_the_scenario_says(found: dict[str, Any], wire: list[bytes]) -> None:
    """So that "equal" cannot mean "equally empty" (nor equally wrong)."""
    requests = {e["event_id"]: e for e in map(json.loads, wire)}
    night = [e for e in found["outbox"] if e["causation_id"] in requests]
    # every reply caused by its request and in that request's conversation
    for reply in night:
        request = requests[reply["causation_id"]]
        assert reply["correlation_id"] == (request["correlation_id"] or request["event_id"])
    assert any(r["correlation_id"] != r["event_id"] for r in requests.values())
    said = [(e["type"], e["payload"]) for e in night]
    replied = {pl["payment_id"]: (t, pl) for t, pl in said if t.startswith("repayment.")}
    # one reply per request, in message order: repeats in the run, before it or in an
    # earlier run of the batch, are applied once and get their first answer again
    answers = [(t, pl) for t, pl in said if t.startswith("repayment.")]
    assert [pl["payment_id"] for t, pl in answers] == [
        "cur-1",
        "par-1",
        "two-1",
        "lat-1",
        "two-2",
        "cur-1b",
        "lat-2",
        "x-1",
        "rej-1",
        "rej-2",
        "rej-3",
        "rej-4",
        "rej-1",
        "dup-1",
        "dup-1",
        "old-1",
        "ovr-1",
        "frz-1",
        "sib-1",
        "cur-2",
        "par-1",
    ]
    firsts: dict[str, tuple[str, dict[str, Any]]] = {}
    for t, pl in answers:
        assert firsts.setdefault(pl["payment_id"], (t, pl)) == (t, pl)  # a repeat: word for word the first
    assert {pid: pl["reason"] for pid, (t, pl) in replied.items() if t == "repayment.rejected"} == {
        "x-1": "unknown_account",
        "rej-1": "unsupported_currency",
        "rej-2": "non_positive_amount",
        "rej-3": "non_positive_amount",
        "rej-4": "too_many_decimals",
    }

    def applied(payment_id: str) -> tuple[list[tuple[str, str]], str, str, str]:
        event_type, payload = replied[payment_id]
        assert event_type == "repayment.applied"
        return (
            [(line["component"], line["amount"]) for line in payload["allocations"]],
            payload["credit_balance"],
            payload["total_overdue"],
            payload["paid_on"],
        )

    # on time, the whole bill and more: charges first, then principal, the rest a credit balance
    assert applied("cur-1") == (
        [("penalty_interest", "3.00"), ("late_fee", "10.00"), ("principal", "1000.00")],
        "87.00",
        "0.00",
        "2026-03-16",
    )
    assert applied("par-1") == (
        [("penalty_interest", "3.00"), ("late_fee", "10.00"), ("principal", "287.00")],
        "0.00",
        "713.00",
        "2026-03-16",
    )
    # two payments of one account in one run: the second sees what the first left
    assert applied("two-1")[2] == "1526.00" and applied("two-2") == (
        [("principal", "1526.00")],
        "474.00",
        "0.00",
        "2026-03-16",
    )
    # late notices, judged on their own dates: in grace, so principal only and the later charges re-judged
    assert applied("lat-1") == ([("principal", "1000.00")], "0.00", "2027.00", "2026-03-12")
    assert applied("lat-2") == ([("principal", "2000.00")], "500.00", "0.00", "2026-03-13")
    assert applied("dup-1")[0] == [("principal", "50.00")]
    assert applied("ovr-1") == ([], "300.00", "0.00", "2026-03-16")  # no bill: a credit balance
    assert applied("cur-2") == ([], "142.00", "0.00", "2026-03-16")  # after the purchase run
    # the cures: restrictions lifted (the limit cut stays), the frozen account's sibling released
    changes = [
        (pl["account_id"], pl["level"], pl["measures"], pl["cause"])
        for t, pl in said
        if t == "account.restrictions.changed"
    ]
    assert changes == [
        ("CUR", 0, ["limit_cut"], "cure"),
        ("TWO", 0, ["limit_cut"], "cure"),
        ("LAT", 0, ["limit_cut"], "cure"),
        ("FRZ", 0, ["limit_cut"], "cure"),
        ("SIB", 0, [], "linked_account"),
    ]
    assert [pl["account_id"] for t, pl in said if t == "account.cured"] == ["CUR", "TWO", "LAT", "FRZ"]
    # ... and seen by the purchases that follow them in the batch
    assert [(t, pl["purchase_id"], pl.get("available_limit")) for t, pl in said if t.startswith("purchase.")] == [
        ("purchase.approved", "cur-buy", "2400.00"),
        ("purchase.approved", "sib-buy", "4900.00"),
    ]
    # rows: one repayment row per payment id (rejections too), one balanced posting per applied one
    rows = {r["payment_id"]: r for r in found["repayments"]}
    assert sorted(rows) == sorted(replied)  # old-1 among them: answered again
    assert (rows["rej-1"]["status"], rows["rej-1"]["currency"]) == ("rejected", "USD")
    postings: dict[str, int] = {}
    for entry in found["ledger_entries"]:
        if entry["kind"] == "repayment":
            postings[entry["posting_id"]] = (
                postings.get(entry["posting_id"], 0) + entry["debit_fen"] - entry["credit_fen"]
            )
    assert postings == {f"repayment:{pid}": 0 for pid, r in rows.items() if r["status"] == "applied"}
    accounts = {a["account_id"]: a for a in found["accounts"]}
    assert {
        a: (accounts[a]["level"], accounts[a]["linked_level"], accounts[a]["credit_balance_fen"])
        for a in ("CUR", "PAR", "TWO", "LAT", "FRZ", "SIB", "OVR")
    } == {
        "CUR": (0, 0, 14_200),
        "PAR": (2, 0, 0),
        "TWO": (0, 0, 47_400),
        "LAT": (0, 0, 50_000),
        "FRZ": (0, 0, 19_360),
        "SIB": (0, 0, 1_000),
        "OVR": (0, 0, 30_000),
    }
    late = next(b for b in found["bills"] if b["bill_id"] == "LAT-202603")
    assert (late["late_fee_charged_fen"], late["bureau_marked_on"], str(late["settled_on"])) == (0, None, "2026-03-13")


def test_a_purchase_after_a_cure_in_the_same_batch_is_judged_on_the_lifted_restrictions(databases: Databases) -> None:
    """The relock lifts the ladder columns with Core UPDATEs the session's Account objects do
    not see; the purchase run reads its accounts afresh (populate_existing), so a customer who
    just paid is not declined by the restriction the payment lifted.

    The objects are kept alive through the batch: left to themselves they are usually
    dropped from the (weak) identity map when the repayment run returns, and the purchase
    run would load them afresh anyway, hiding a stale read; kept, the stale level is what a
    purchase run without populate_existing is served (then CUR is declined
    ``account_restricted`` and SIB ``linked_account_restricted``)."""
    engine = _prepared(databases)
    with engine.connect() as conn:
        before = {
            a: (level, linked)
            for a, level, linked in conn.execute(
                select(Account.account_id, Account.level, Account.linked_level).where(
                    Account.account_id.in_(["CUR", "SIB"])
                )
            )
        }
    assert before == {"CUR": (2, 0), "SIB": (0, 3)}  # restricted: a purchase now would be declined
    with objects_kept_alive():  # the accounts the repayment run loaded stay in the session's identity map
        ACCOUNTS.apply(
            engine,
            HANDLERS,
            bodies(
                [
                    _repay("CUR", "cur-1", "1100.00"),  # cures CUR
                    _repay("FRZ", "frz-1", "1000.00"),  # cures FRZ, which held its sibling SIB
                    _buy("CUR", "cur-buy", "100.00", ON_TIME),
                    _buy("SIB", "sib-buy", "100.00", ON_TIME),
                ],
                NIGHT,
            ),
            4,
        )
    found = ACCOUNTS.state(engine)
    replies = [
        (e["type"], e["payload"]["purchase_id"], e["payload"].get("available_limit"), e["payload"].get("reason"))
        for e in found["outbox"]
        if e["type"].startswith("purchase.") and e["payload"]["purchase_id"] in ("cur-buy", "sib-buy")
    ]
    assert replies == [
        ("purchase.approved", "cur-buy", "2400.00", None),
        ("purchase.approved", "sib-buy", "4900.00", None),
    ]
    assert {row["purchase_id"] for row in found["purchases"]} >= {"cur-buy", "sib-buy"}


def test_a_run_reads_what_it_shares_once(databases: Databases) -> None:
    """Applied before? the accounts (locked in pk order) and the last close: one statement
    each for a run of 4 repayments and for a run of 24, where one by one they cost one each."""
    engine = ACCOUNTS.prepared(databases, HANDLERS, bodies([_grant(f"S{k}") for k in range(12)], SETUP))
    shared_reads = {
        "applied before": "FROM repayments WHERE repayments.payment_id",
        "accounts": "FROM accounts WHERE accounts.account_id",
        "last close": "FROM job_runs",
    }
    statements: list[str] = []

    def reads(n: int, prefix: str, batch: int | None = None) -> dict[str, int]:
        night = [_repay(f"S{k % 12}", f"{prefix}-{k}", "10.00") for k in range(n)]
        sent = ACCOUNTS.statements(engine, HANDLERS, bodies(night, NIGHT), batch)  # one batch: one run
        statements[:] = [" ".join(s.split()) for s in sent]
        selects = [s for s in statements if s.startswith("SELECT")]
        return {name: sum(pattern in s for s in selects) for name, pattern in shared_reads.items()}

    assert reads(4, "small") == {"applied before": 1, "accounts": 1, "last close": 1}
    assert reads(24, "large") == {"applied before": 1, "accounts": 1, "last close": 1}
    (locking,) = [s for s in statements if shared_reads["accounts"] in s]
    assert "accounts.account_id IN" in locking and "ORDER BY accounts.pk" in locking
    if engine.dialect.name == "postgresql":
        assert locking.endswith("FOR UPDATE")
    # the counting itself: runs of one look each of them up for every payment
    assert reads(6, "one-by-one", batch=1) == {"applied before": 6, "accounts": 6, "last close": 6}
    with engine.connect() as conn:
        assert sum(conn.execute(select(Account.credit_balance_fen)).scalars()) == 34 * 1_000
