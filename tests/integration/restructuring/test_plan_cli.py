"""``baitiao plan offers`` and ``baitiao plan show`` read the service's own database."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from baitiao.commands.plans import plan
from tests.integration.restructuring.conftest import Restructuring


@pytest.fixture()
def cli(rs: Restructuring, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BAITIAO_RESTRUCTURING_DB_URL", rs.engine.url.render_as_string(hide_password=False))
    return CliRunner()


def test_offers_disclosure_matches_the_worked_example(rs: Restructuring, cli: CliRunner) -> None:
    rs.overdue_account("acc-cli")
    result = cli.invoke(plan, ["offers", "acc-cli", "--date", "2026-03-20", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["eligible"], data["grade"], data["principal"]) == (True, "B", "3000.00")
    six = next(o for o in data["offers"] if o["term"] == 6)
    assert (six["monthly_payment"], six["total_fee"], six["apr"]) == ("518.00", "108.00", "0.1224")
    table = cli.invoke(plan, ["offers", "acc-cli", "--date", "2026-03-20"])
    assert table.exit_code == 0 and "518.00" in table.output and "12.24%" in table.output


def test_offers_says_why_not(rs: Restructuring, cli: CliRunner) -> None:
    rs.overdue_account("acc-cli-poor")
    result = cli.invoke(plan, ["offers", "acc-cli-poor", "--date", "2026-03-20", "--income", "100.00"])
    assert result.exit_code == 0, result.output
    assert "Not eligible" in result.output and "no_affordable_offer" in result.output
    unknown = cli.invoke(plan, ["offers", "acc-cli-nobody", "--json"])
    assert json.loads(unknown.output)["reason"] == "unknown_account"


def test_show_marks_paid_and_overdue(rs: Restructuring, cli: CliRunner) -> None:
    activated = rs.activate("acc-cli-show", term=3)
    rs.pay_plan("acc-cli-show", activated["plan_id"], "cli-1", "1018.00", "2026-04-22")
    result = cli.invoke(plan, ["show", activated["plan_id"], "--date", "2026-05-25", "--json"])
    assert result.exit_code == 0, result.output
    lines = json.loads(result.output)["schedule"]
    assert [(s["status"], s["paid"], s["dpd"]) for s in lines] == [
        ("paid", "1018.00", 0),
        ("overdue", "0.00", 3),
        ("open", "0.00", 0),
    ]
    assert cli.invoke(plan, ["show", activated["plan_id"], "--date", "2026-05-25"]).exit_code == 0
    assert cli.invoke(plan, ["show", "plan-nope"]).exit_code != 0
