"""The summaries of a partitioned job's chains, added up into the job's one summary."""
from __future__ import annotations

from shared.job_runner import merge_chain_summaries


def test_one_chain_is_its_own_summary() -> None:
    final = {"job": "collections-daily", "business_date": "2026-03-02", "cases": 7, "escalations": 2}
    assert merge_chain_summaries([final]) == final


def test_the_chains_counts_add_up_and_the_rest_is_the_first_chains() -> None:
    finals = [
        {"job": "contact-dispatch", "at": "2026-03-02T08:00:00+08:00", "contacts": 5, "sent": 4, "deferred": 1},
        {"job": "contact-dispatch", "at": "2026-03-02T08:00:00+08:00", "contacts": 3, "sent": 3, "dry": True},
    ]
    assert merge_chain_summaries(finals) == {
        "job": "contact-dispatch", "at": "2026-03-02T08:00:00+08:00", "contacts": 8, "sent": 7, "deferred": 1,
        "dry": True, "partitions": 2,
    }


def test_a_flag_is_not_counted() -> None:
    finals = [{"done": True, "n": 1}, {"done": True, "n": 2}]
    assert merge_chain_summaries(finals) == {"done": True, "n": 3, "partitions": 2}
