"""A partitioned job's chains: which ones its first task starts, and their summaries added
up into the job's one summary."""

from __future__ import annotations

from shared.job_runner import merge_chain_summaries
from shared.jobs import chains_to_start
from shared.service import JobSpec

PARTITIONED = JobSpec("contact-dispatch", "collections.contact_dispatch", partitioned=True)


def test_one_chain_is_its_own_summary() -> None:
    final = {"job": "collections-daily", "business_date": "2026-03-02", "cases": 7, "escalations": 2}
    assert merge_chain_summaries([final]) == final


def test_the_chains_counts_add_up_and_the_rest_is_the_first_chains() -> None:
    finals = [
        {"job": "contact-dispatch", "at": "2026-03-02T08:00:00+08:00", "contacts": 5, "sent": 4, "deferred": 1},
        {"job": "contact-dispatch", "at": "2026-03-02T08:00:00+08:00", "contacts": 3, "sent": 3, "dry": True},
    ]
    assert merge_chain_summaries(finals) == {
        "job": "contact-dispatch",
        "at": "2026-03-02T08:00:00+08:00",
        "contacts": 8,
        "sent": 7,
        "deferred": 1,
        "dry": True,
        "partitions": 2,
    }


def test_a_flag_is_not_counted() -> None:
    finals = [{"done": True, "n": 1}, {"done": True, "n": 2}]
    assert merge_chain_summaries(finals) == {"done": True, "n": 3, "partitions": 2}


def test_the_first_task_starts_one_chain_per_share() -> None:
    assert chains_to_start(PARTITIONED, 2, {"at": 1}, lambda: True) == [
        {"at": 1, "partition": [0, 2]},
        {"at": 1, "partition": [1, 2]},
    ]


def test_no_fan_out_for_a_plain_job_one_partition_or_a_chain_that_has_its_share() -> None:
    plain = JobSpec("daily-close", "accounts.daily_close")
    assert chains_to_start(plain, 2, {}, lambda: True) == []
    assert chains_to_start(PARTITIONED, 1, {}, lambda: True) == []
    assert chains_to_start(PARTITIONED, 2, {"partition": [1, 2]}, lambda: True) == []


def test_not_worth_it_runs_the_whole_job_here_and_its_continuations_stay_whole() -> None:
    state: dict[str, object] = {}
    assert chains_to_start(PARTITIONED, 2, state, lambda: False) == []
    assert state == {"partition": None}
    asked = []
    assert chains_to_start(PARTITIONED, 2, dict(state), lambda: asked.append(1) or True) == []
    assert asked == []  # a continuation is not asked again
