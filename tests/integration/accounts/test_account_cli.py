"""``baitiao account show|ledger`` against a real PostgreSQL accounts database."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from baitiao.commands.accounts import account as account_group
from services.accounts.models import LedgerEntry, Repayment
from shared.clock import at_local
from shared.db import transaction
from tests.integration.accounts.pg import AccountsDb, account, accounts_db, bill, d, plan, restriction

__all__ = ["accounts_db"]  # the fixture, imported for this module

ACCOUNT = "acc-cli-1"


def _entry(
    owner_pk: int,
    posting: str,
    day: str,
    kind: str,
    ledger_account: str,
    debit: int = 0,
    credit: int = 0,
    bill_pk: int | None = None,
) -> LedgerEntry:
    return LedgerEntry(
        posting_id=posting,
        account_pk=owner_pk,
        bill_pk=bill_pk,
        business_date=d(day),
        ledger_account=ledger_account,
        debit_fen=debit,
        credit_fen=credit,
        kind=kind,
    )


@pytest.fixture(scope="module")
def db(accounts_db: AccountsDb) -> AccountsDb:
    """One overdue account at DPD 10 after the worked example's shape: 3,000.00 billed,
    30.00 late fee, 1,000.00 repaid, plus a settled bill, a plan projection and history."""
    with transaction(accounts_db.engine) as s:
        owner = account(
            ACCOUNT,
            level=2,
            max_dpd=10,
            limit_cut=True,
            credit_limit_fen=250_000,
            unpaid_principal_fen=200_000,
            credit_balance_fen=0,
            last_overdue_on=d("2026-03-20"),
        )
        s.add(owner)
        s.flush()
        overdue = bill(
            owner,
            "cli-b2",
            statement="2026-02-20",
            due="2026-03-10",
            principal_fen=300_000,
            unpaid_fen=200_000,
            dpd=10,
            unpaid_late_fee_fen=3_000,
            late_fee_charged_fen=3_000,
            unpaid_penalty_fen=1_500,
            penalty_charged_fen=1_500,
            overdue_since=d("2026-03-11"),
            bureau_marked_on=d("2026-03-14"),
            report_notice_on=d("2026-03-11"),
        )
        settled = bill(
            owner, "cli-b1", statement="2026-01-20", due="2026-02-10", principal_fen=50_000, settled_on="2026-02-09"
        )
        s.add_all([overdue, settled])
        s.flush()
        s.add_all(
            [
                restriction(owner, "borrowing_suspended", added_on="2026-03-11"),
                restriction(owner, "reported_to_bureau", added_on="2026-03-14"),
                restriction(owner, "limit_cut", added_on="2026-03-14"),
                restriction(owner, "available_frozen", added_on="2026-01-01", lifted_on="2026-01-05"),
                plan(owner, "plan-old", activated_on="2025-06-01", status="completed", ended_on="2025-12-01"),
                _entry(owner.pk, "p1", "2026-01-15", "purchase", "customer_principal", debit=50_000),
                _entry(owner.pk, "p1", "2026-01-15", "purchase", "merchant_payable", credit=50_000),
                _entry(owner.pk, "p2", "2026-02-09", "repayment", "cash", debit=50_000),
                _entry(owner.pk, "p2", "2026-02-09", "repayment", "customer_principal", credit=50_000),
                _entry(owner.pk, "p3", "2026-02-15", "purchase", "customer_principal", debit=300_000),
                _entry(owner.pk, "p3", "2026-02-15", "purchase", "merchant_payable", credit=300_000),
                _entry(owner.pk, "p4", "2026-03-13", "late_fee", "customer_late_fee", debit=3_000, bill_pk=overdue.pk),
                _entry(owner.pk, "p4", "2026-03-13", "late_fee", "fee_income", credit=3_000, bill_pk=overdue.pk),
                _entry(owner.pk, "p5", "2026-03-14", "penalty", "customer_penalty", debit=1_500, bill_pk=overdue.pk),
                _entry(owner.pk, "p5", "2026-03-14", "penalty", "penalty_income", credit=1_500, bill_pk=overdue.pk),
                _entry(owner.pk, "p6", "2026-03-15", "repayment", "cash", debit=100_000),
                _entry(
                    owner.pk, "p6", "2026-03-15", "repayment", "customer_principal", credit=100_000, bill_pk=overdue.pk
                ),
                Repayment(
                    payment_id="pay-1",
                    account_id=ACCOUNT,
                    amount="1000.00",
                    currency="CNY",
                    paid_at=at_local(d("2026-03-15"), "10:00"),
                    paid_on=d("2026-03-15"),
                    channel="app",
                    status="applied",
                    reason=None,
                    allocations=json.dumps(
                        [{"target": "bill", "target_id": "cli-b2", "component": "principal", "amount": "1000.00"}]
                    ),
                ),
                Repayment(
                    payment_id="pay-bad",
                    account_id=ACCOUNT,
                    amount="-5",
                    currency="CNY",
                    paid_at=at_local(d("2026-03-16"), "10:00"),
                    paid_on=d("2026-03-16"),
                    channel="app",
                    status="rejected",
                    reason="non_positive_amount",
                ),
            ]
        )
    return accounts_db


@pytest.fixture()
def cli(db: AccountsDb, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BAITIAO_ACCOUNTS_DB_URL", db.url)
    return CliRunner()


def _json(cli: CliRunner, *args: str) -> dict[str, Any]:
    result = cli.invoke(account_group, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_show_json_has_status_limits_restrictions_bills_and_balances(cli: CliRunner) -> None:
    view = _json(cli, "show", ACCOUNT)
    assert (view["status"], view["borrowing"], view["level"], view["max_dpd"]) == ("open", "restricted", 2, 10)
    assert (view["granted_limit"], view["credit_limit"], view["limit_cut"]) == ("5000.00", "2500.00", True)
    assert view["available"] == "500.00"  # 2,500.00 cut limit − 2,000.00 unpaid principal
    assert (view["unpaid_principal"], view["credit_balance"]) == ("2000.00", "0.00")
    assert view["restrictions"]["current"] == ["borrowing_suspended", "reported_to_bureau", "limit_cut"]
    history = view["restrictions"]["history"]
    assert history[0] == {
        "measure": "available_frozen",
        "cause": "own_overdue",
        "added_on": "2026-01-01",
        "lifted_on": "2026-01-05",
    }
    assert [h["measure"] for h in history if h["lifted_on"] is None] == view["restrictions"]["current"]

    settled, overdue = view["bills"]  # by due date
    assert settled["bill_id"] == "cli-b1" and settled["settled_on"] == "2026-02-09"
    assert overdue == {
        "bill_id": "cli-b2",
        "statement_date": "2026-02-20",
        "due_date": "2026-03-10",
        "dpd": 10,
        "principal": "3000.00",
        "unpaid_principal": "2000.00",
        "disputed": "0.00",
        "unpaid_penalty": "15.00",
        "unpaid_late_fee": "30.00",
        "penalty_charged": "15.00",
        "late_fee_charged": "30.00",
        "charged_off": False,
        "charged_off_on": None,
        "in_plan": False,
        "plan_id": None,
        "settled_on": None,
        "bureau_marked_on": "2026-03-14",
        "report_notice_on": "2026-03-11",
        "report_notice_channel": "sms",
    }
    assert view["active_plan"] is None
    assert [r["payment_id"] for r in view["repayments"]] == ["pay-bad", "pay-1"]  # most recent first
    assert view["repayments"][1]["allocations"][0]["amount"] == "1000.00"
    assert view["balances"]["by_account"]["customer_principal"] == "2000.00"
    assert view["balances"]["by_account"]["fee_income"] == "-30.00"
    assert view["balances"]["customer_balance"] == "2045.00"  # principal + late fee + penalty


def test_show_prints_a_readable_layout(cli: CliRunner) -> None:
    result = cli.invoke(account_group, ["show", ACCOUNT])
    assert result.exit_code == 0, result.output
    for fragment in ("Account acc-cli-1", "available 500.00", "Restrictions", "Bills", "cli-b2", "2045.00"):
        assert fragment in result.output
    assert "notice" in result.output and "2026-03-11" in result.output  # the pre-report notice and its date


def test_ledger_proves_debits_equal_credits_with_a_running_balance(cli: CliRunner) -> None:
    data = _json(cli, "ledger", ACCOUNT)
    assert data["totals"] == {"debits": "5045.00", "credits": "5045.00", "balanced": True}
    entries = data["entries"]
    assert [e["posting_id"] for e in entries][:2] == ["p1", "p1"]
    assert entries[0] | {"id": 0} == {
        "id": 0,
        "date": "2026-01-15",
        "posting_id": "p1",
        "kind": "purchase",
        "ledger_account": "customer_principal",
        "bill_pk": None,
        "debit": "500.00",
        "credit": "0.00",
        "customer_balance": "500.00",
    }
    assert entries[-1]["customer_balance"] == "2045.00"
    table = cli.invoke(account_group, ["ledger", ACCOUNT])
    assert table.exit_code == 0, table.output
    assert "debits 5045.00 == credits 5045.00" in table.output


@pytest.mark.parametrize("command", ["show", "ledger"])
@pytest.mark.parametrize("as_json", [False, True])
def test_an_unknown_account_is_an_error(cli: CliRunner, command: str, as_json: bool) -> None:
    result = cli.invoke(account_group, [command, "acc-nobody", *(["--json"] if as_json else [])])
    assert result.exit_code == 1
    assert "no account acc-nobody" in result.output
