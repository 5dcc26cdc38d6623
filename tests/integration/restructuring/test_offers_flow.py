"""Assessment, offers, ineligibility and acceptance, through the event applier on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from tests.integration.restructuring.conftest import Restructuring, at


def test_first_overdue_assesses_risk_once(rs: Restructuring) -> None:
    mark = rs.mark()
    rs.overdue_account("acc-risk")
    assessed = rs.payloads(mark, "risk.assessed")
    assert len(assessed) == 1  # bill.overdue opened the episode; the snapshot did not assess again
    assert assessed[0]["account_id"] == "acc-risk"
    assert [f["name"] for f in assessed[0]["factors"]] == [
        "current_dpd",
        "overdue_bills_12m",
        "months_on_book",
        "debt_to_income",
    ]


def test_worked_example_offer_to_the_fen(rs: Restructuring) -> None:
    """RULES 8: P 3,000.00, 6 months, grade B → 500.00 + 18.00 = 518.00, fee 108.00, 12.24 %."""
    rs.overdue_account("acc-we")  # 2,970.00 principal + 30.00 late fee
    mark = rs.request_offers("acc-we", "req-we", at("2026-03-20"))
    (assessed,) = rs.payloads(mark, "risk.assessed")
    # 600 − 30 (DPD 10) − 15 (one bill overdue) + 30 (39 months on book) + 30 (DTI 0.0125)
    assert (assessed["score"], assessed["grade"]) == (615, "B")
    (offered,) = rs.payloads(mark, "plan.offered")
    assert offered["grade"] == "B" and offered["request_id"] == "req-we"
    assert [o["term"] for o in offered["offers"]] == [3, 6, 9, 12, 18, 24]
    six = rs.offer(mark, 6)
    assert six["principal"] == "3000.00"
    assert six["method"] == "equal_principal"
    assert six["monthly_fee_rate"] == "0.0060"
    assert six["monthly_payment"] == "518.00"
    assert six["total_fee"] == "108.00"
    assert six["apr"] == "0.1224"
    assert [(s["principal"], s["fee"], s["total"]) for s in six["schedule"]] == [("500.00", "18.00", "518.00")] * 6
    assert [s["due_date"] for s in six["schedule"]][:2] == ["2026-04-20", "2026-05-20"]
    expires = (at("2026-03-20") + timedelta(days=7)).isoformat()
    assert six["expires_at"] == expires
    assert all(float(o["apr"]) <= 0.24 for o in offered["offers"])


def test_same_request_id_is_decided_once_and_gets_its_first_answer_again(rs: Restructuring) -> None:
    rs.overdue_account("acc-dup")
    mark = rs.request_offers("acc-dup", "req-dup", at("2026-03-20"))
    rs.request_offers("acc-dup", "req-dup", at("2026-03-20", "10:05"))
    first, again = rs.payloads(mark, "plan.offered")
    assert again == first  # the offers of 10:00, not new ones
    assert len(rs.payloads(mark, "risk.assessed")) == 1


def _reason(rs: Restructuring, mark: int) -> str:
    (ineligible,) = rs.payloads(mark, "plan.ineligible")
    return ineligible["reason"]


def test_unknown_account_is_ineligible(rs: Restructuring) -> None:
    mark = rs.request_offers("acc-nobody", "req-nobody", at("2026-03-20"))
    assert _reason(rs, mark) == "unknown_account"
    assert rs.payloads(mark, "risk.assessed") == []


def test_no_overdue_bills_is_ineligible(rs: Restructuring) -> None:
    rs.send(
        "credit.line.granted",
        {
            "account_id": "acc-clean",
            "customer_id": "c",
            "identity_hash": "h" * 16,
            "credit_limit": "5000.00",
            "name": "李四",
            "phone": "13900001234",
            "opened_on": "2025-01-01",
        },
        at("2025-01-01"),
    )
    mark = rs.request_offers("acc-clean", "req-clean", at("2026-03-20"))
    assert _reason(rs, mark) == "no_overdue_bills"
    assert len(rs.payloads(mark, "risk.assessed")) == 1  # assessed on every offer request


def test_dpd_above_90_is_ineligible(rs: Restructuring) -> None:
    rs.overdue_account("acc-old", due="2025-12-10", day="2026-03-15", dpd=95)
    mark = rs.request_offers("acc-old", "req-old", at("2026-03-15"))
    assert _reason(rs, mark) == "dpd_too_high"


def test_grade_e_is_ineligible(rs: Restructuring) -> None:
    # DPD 80 (−100), opened 3 months ago (−20), income unknown (−20), one bill (−15): 445, E
    rs.overdue_account("acc-e", due="2025-12-31", day="2026-03-20", dpd=79, income=None, opened_on="2025-12-15")
    mark = rs.request_offers("acc-e", "req-e", at("2026-03-20"))
    (assessed,) = rs.payloads(mark, "risk.assessed")
    assert assessed["grade"] == "E"
    assert _reason(rs, mark) == "grade_not_eligible"


def test_no_affordable_offer_is_ineligible(rs: Restructuring) -> None:
    rs.overdue_account("acc-poor")
    mark = rs.request_offers("acc-poor", "req-poor", at("2026-03-20"), income="200.00")  # 50 % = 100.00
    assert _reason(rs, mark) == "no_affordable_offer"


def test_accept_activates_plan_from_acceptance_date(rs: Restructuring) -> None:
    activated = rs.activate("acc-act", term=6, accepted="2026-03-31", requested="2026-03-30")
    assert activated["account_id"] == "acc-act"
    assert activated["principal"] == "3000.00" and activated["term"] == 6
    assert activated["bill_ids"] == ["acc-act-b1"]
    dues = [s["due_date"] for s in activated["schedule"]]
    assert dues[:3] == ["2026-04-30", "2026-05-31", "2026-06-30"]  # clamped to the month's end
    assert {s["total"] for s in activated["schedule"]} == {"518.00"}
    mark = rs.request_offers("acc-act", "req-act-2", at("2026-04-01"))
    assert _reason(rs, mark) == "plan_already_active"


def test_acceptance_refusals(rs: Restructuring) -> None:
    rs.overdue_account("acc-ref")
    mark = rs.request_offers("acc-ref", "req-ref", at("2026-03-20"))
    three, six = rs.offer(mark, 3), rs.offer(mark, 6)

    def accept(offer_id: str, when: str, account: str = "acc-ref") -> str | None:
        m = rs.mark()
        instant = at(when)
        rs.send(
            "plan.offer.accepted",
            {"offer_id": offer_id, "account_id": account, "accepted_at": instant.isoformat()},
            instant,
        )
        refused = rs.payloads(m, "plan.ineligible")
        assert all(r["request_id"] == offer_id for r in refused)
        return refused[0]["reason"] if refused else None

    assert accept("off-nope", "2026-03-21") == "offer_unknown"
    assert accept(three["offer_id"], "2026-03-21", account="acc-other") == "offer_unknown"
    assert accept(six["offer_id"], "2026-03-27") == "offer_expired"  # 7 days after 03-20 10:00
    assert accept(six["offer_id"], "2026-03-21") == "offer_expired"  # stays expired
    assert accept(three["offer_id"], "2026-03-21") is None  # accepted within validity
    assert accept(three["offer_id"], "2026-03-21") is None  # a retry: plan.activated again, not a refusal
    again = [a for a in rs.payloads(mark, "plan.activated") if a["offer_id"] == three["offer_id"]]
    assert len(again) == 2 and again[0] == again[1]


def test_accepting_a_sibling_offer_is_refused(rs: Restructuring) -> None:
    rs.overdue_account("acc-sib")
    mark = rs.request_offers("acc-sib", "req-sib", at("2026-03-20"))
    nine, twelve = rs.offer(mark, 9), rs.offer(mark, 12)
    for offer in (nine, twelve):
        rs.send(
            "plan.offer.accepted",
            {"offer_id": offer["offer_id"], "account_id": "acc-sib", "accepted_at": at("2026-03-21").isoformat()},
            at("2026-03-21"),
        )
    assert len(rs.payloads(mark, "plan.activated")) == 1
    assert [r["reason"] for r in rs.payloads(mark, "plan.ineligible")] == ["offer_used"]


def test_older_delinquency_snapshot_never_overwrites_newer(rs: Restructuring) -> None:
    rs.overdue_account("acc-ord", day="2026-03-20", dpd=10)
    newer = {
        "account_id": "acc-ord",
        "business_date": "2026-03-25",
        "max_dpd": 15,
        "overdue_principal": "2970.00",
        "penalty_interest": "5.00",
        "late_fees": "30.00",
        "total_overdue": "3005.00",
        "bills": [
            {
                "bill_id": "acc-ord-b1",
                "due_date": "2026-03-10",
                "dpd": 15,
                "unpaid_principal": "2970.00",
                "penalty_interest": "5.00",
                "late_fee": "30.00",
            }
        ],
    }
    older = {
        **newer,
        "business_date": "2026-03-12",
        "max_dpd": 2,
        "penalty_interest": "1.00",
        "late_fees": "0.00",
        "total_overdue": "2971.00",
        "bills": [{**newer["bills"][0], "dpd": 2, "penalty_interest": "1.00", "late_fee": "0.00"}],
    }
    rs.send("account.delinquency.updated", newer, at("2026-03-25", "00:30"), sequence=20)
    rs.send("account.delinquency.updated", older, at("2026-03-12", "00:30"), sequence=10)
    mark = rs.request_offers("acc-ord", "req-ord", at("2026-03-25"))
    assert rs.offer(mark, 6)["principal"] == "3005.00"  # the newer snapshot's figures
