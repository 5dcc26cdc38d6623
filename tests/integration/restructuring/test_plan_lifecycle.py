"""An active plan's life: payments, completion, early settlement, monitoring, default, adjustment."""

from __future__ import annotations

from tests.integration.restructuring.conftest import Restructuring


def test_payments_pay_installments_then_complete(rs: Restructuring) -> None:
    plan = rs.activate("acc-pay", term=3)  # 1,000.00 + 18.00 on 04-22, 05-22, 06-22
    plan_id = plan["plan_id"]
    assert {s["total"] for s in plan["schedule"]} == {"1018.00"}
    mark = rs.pay_plan("acc-pay", plan_id, "pay-1", "1018.00", "2026-04-20")
    assert rs.payloads(mark, "plan.installment.paid") == [
        {"plan_id": plan_id, "account_id": "acc-pay", "period": 1, "paid_on": "2026-04-20"},
    ]
    mark = rs.pay_plan("acc-pay", plan_id, "pay-1", "1018.00", "2026-04-20")  # announced again
    assert rs.emitted(mark) == []
    mark = rs.pay_plan("acc-pay", plan_id, "pay-2", "500.00", "2026-05-20")  # partial: nothing completes
    assert rs.emitted(mark) == []
    mark = rs.pay_plan("acc-pay", plan_id, "pay-3", "518.00", "2026-05-21")
    assert [e["period"] for e in rs.payloads(mark, "plan.installment.paid")] == [2]
    mark = rs.pay_plan("acc-pay", plan_id, "pay-4", "1018.00", "2026-06-22")
    assert [t for t, _ in rs.emitted(mark)] == ["plan.installment.paid", "plan.completed"]
    assert rs.payloads(mark, "plan.completed")[0]["completed_on"] == "2026-06-22"


def test_early_settlement_waives_future_fees(rs: Restructuring) -> None:
    plan = rs.activate("acc-early", term=6)  # 500.00 + 18.00 monthly from 04-22
    plan_id = plan["plan_id"]
    rs.pay_plan("acc-early", plan_id, "e-1", "518.00", "2026-04-22")
    # On 05-01: remaining principal 2,500.00 + the current period's (2, due 05-22) fee 18.00
    mark = rs.pay_plan("acc-early", plan_id, "e-2", "2518.00", "2026-05-01")
    paid = rs.payloads(mark, "plan.installment.paid")
    assert [e["period"] for e in paid] == [2, 3, 4, 5, 6]
    (completed,) = rs.payloads(mark, "plan.completed")
    assert completed == {"plan_id": plan_id, "account_id": "acc-early", "completed_on": "2026-05-01"}
    mark = rs.pay_plan("acc-early", plan_id, "e-3", "18.00", "2026-05-02")  # too late: plan is over
    assert rs.emitted(mark) == []


def test_monitor_overdue_then_default_on_two_missed(rs: Restructuring) -> None:
    plan = rs.activate("acc-def", term=6)  # due 04-22, 05-22, ...
    plan_id = plan["plan_id"]
    mark = rs.mark()
    rs.monitor("2026-04-22")  # due today: not overdue yet
    assert rs.payloads(mark, "plan.installment.overdue") == []
    rs.monitor("2026-04-23")
    assert rs.payloads(mark, "plan.installment.overdue") == [
        {
            "plan_id": plan_id,
            "account_id": "acc-def",
            "period": 1,
            "due_date": "2026-04-22",
            "dpd": 1,
            "amount": "518.00",
        }
    ]
    again = rs.monitor("2026-04-23", forget_earlier_run=False)
    assert again.summary == {"skipped": "already_done"}
    rs.monitor("2026-04-30")
    assert len(rs.payloads(mark, "plan.installment.overdue")) == 1  # once per installment
    mark = rs.mark()
    rs.monitor("2026-05-23")  # period 2 overdue too: two at once
    assert [e["period"] for e in rs.payloads(mark, "plan.installment.overdue")] == [2]
    (defaulted,) = rs.payloads(mark, "plan.defaulted")
    assert defaulted == {
        "plan_id": plan_id,
        "account_id": "acc-def",
        "business_date": "2026-05-23",
        "outstanding_principal": "3000.00",
        "fees_due": "36.00",
        "first_missed_due_date": "2026-04-22",
    }
    mark = rs.mark()
    rs.monitor("2026-06-30")
    assert rs.emitted(mark) == []  # a defaulted plan is no longer monitored
    # the plan left the account; its bills stay restructured until accounts reports the default bill
    mark = rs.request_offers("acc-def", "req-def-2", rs.clock.now())
    assert [r["reason"] for r in rs.payloads(mark, "plan.ineligible")] == ["no_overdue_bills"]


def test_default_at_dpd_31_with_one_installment(rs: Restructuring) -> None:
    """Period 2 (due 05-22) reaches DPD 31 on 06-22, the day period 3 falls due: one overdue
    installment, the DPD rule alone defaults the plan."""
    plan = rs.activate("acc-d31", term=3)  # 1,018.00 due 04-22, 05-22, 06-22
    rs.pay_plan("acc-d31", plan["plan_id"], "d31-1", "1018.00", "2026-04-22")
    mark = rs.mark()
    rs.monitor("2026-06-21")  # period 2 at DPD 30
    assert rs.payloads(mark, "plan.defaulted") == []
    rs.monitor("2026-06-22")
    (defaulted,) = rs.payloads(mark, "plan.defaulted")
    assert defaulted["outstanding_principal"] == "2000.00"
    assert defaulted["fees_due"] == "36.00"  # period 2's fee and period 3's, due today
    assert defaulted["first_missed_due_date"] == "2026-05-22"


def test_adjustment_extend_then_second_rejected(rs: Restructuring) -> None:
    plan = rs.activate("acc-ext", term=6)
    plan_id = plan["plan_id"]
    rs.pay_plan("acc-ext", plan_id, "x-1", "518.00", "2026-04-22")
    mark = rs.mark()
    rs.send(
        "plan.adjustment.requested",
        {"request_id": "adj-1", "plan_id": plan_id, "kind": "extend", "new_term": 10},
        rs.clock.now().replace(month=5, day=1),
    )
    (adjusted,) = rs.payloads(mark, "plan.adjusted")
    assert adjusted["kind"] == "extend" and adjusted["request_id"] == "adj-1"
    assert [s["period"] for s in adjusted["schedule"]] == list(range(2, 12))
    assert {(s["principal"], s["fee"]) for s in adjusted["schedule"]} == {("250.00", "15.00")}
    assert adjusted["schedule"][0]["due_date"] == "2026-05-22"
    assert adjusted["monthly_payment"] == "265.00"
    assert "0.10" < adjusted["apr"] < "0.24"
    rs.send(
        "plan.adjustment.requested",
        {"request_id": "adj-1", "plan_id": plan_id, "kind": "extend", "new_term": 12},
        rs.clock.now(),
    )
    first, again = rs.emitted(mark)  # same request_id: decided once, its first answer again
    assert again == first == ("plan.adjusted", adjusted)
    rs.send(
        "plan.adjustment.requested",
        {"request_id": "adj-2", "plan_id": plan_id, "kind": "lower_payment", "target_payment": "200.00"},
        rs.clock.now(),
    )
    assert rs.payloads(mark, "plan.adjustment.rejected") == [
        {"plan_id": plan_id, "request_id": "adj-2", "reason": "already_adjusted"},
    ]
    # the new schedule is the one monitored and paid
    mark = rs.pay_plan("acc-ext", plan_id, "x-2", "265.00", "2026-05-22")
    assert [e["period"] for e in rs.payloads(mark, "plan.installment.paid")] == [2]


def test_adjustment_lower_payment(rs: Restructuring) -> None:
    plan = rs.activate("acc-low", term=6)
    mark = rs.mark()
    rs.send(
        "plan.adjustment.requested",
        {"request_id": "low-1", "plan_id": plan["plan_id"], "kind": "lower_payment", "target_payment": "300.00"},
        rs.clock.now(),
    )
    (adjusted,) = rs.payloads(mark, "plan.adjusted")
    # shortest term with round(3000 / n) + 18.00 ≤ 300.00 is 11: 272.73 + 18.00
    assert len(adjusted["schedule"]) == 11
    assert adjusted["monthly_payment"] == "290.73"
    assert sum(float(s["principal"]) for s in adjusted["schedule"]) == 3000.00


def test_adjustment_rejections(rs: Restructuring) -> None:
    plan = rs.activate("acc-rej", term=6)
    plan_id = plan["plan_id"]
    cases = [
        ({"plan_id": "plan-nope", "kind": "extend", "new_term": 12}, "plan_unknown"),
        ({"plan_id": plan_id, "kind": "extend"}, "new_term_missing"),
        ({"plan_id": plan_id, "kind": "extend", "new_term": 25}, "term_too_long"),
        ({"plan_id": plan_id, "kind": "extend", "new_term": 6}, "not_longer"),
        ({"plan_id": plan_id, "kind": "lower_payment", "target_payment": "600.00"}, "target_not_lower"),
    ]
    for i, (body, reason) in enumerate(cases):
        mark = rs.mark()
        rs.send("plan.adjustment.requested", {"request_id": f"rej-{i}", **body}, rs.clock.now())
        assert [r["reason"] for r in rs.payloads(mark, "plan.adjustment.rejected")] == [reason]
    rs.monitor("2026-04-23")  # period 1 unpaid after 04-22
    mark = rs.mark()
    rs.send(
        "plan.adjustment.requested",
        {"request_id": "rej-late", "plan_id": plan_id, "kind": "extend", "new_term": 12},
        rs.clock.now().replace(day=24),
    )
    assert [r["reason"] for r in rs.payloads(mark, "plan.adjustment.rejected")] == ["installment_overdue"]
