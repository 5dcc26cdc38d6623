"""The one snapshot-ordering rule (shared/snapshot_order.py): the sequence decides when both
stamps carry one, the business date only when one is missing."""

from __future__ import annotations

from datetime import date

import pytest

from shared.snapshot_order import included_in_snapshot, supersedes

D1, D2 = date(2026, 3, 10), date(2026, 3, 11)


@pytest.mark.parametrize(
    ("new", "stored", "applies"),
    [
        ((D1, 5), (None, None), True),  # nothing stored
        ((D2, 6), (D1, 5), True),  # later on both counts
        ((D1, 4), (D2, 5), False),  # older on both counts
        ((D1, 6), (D2, 5), True),  # a later sequence wins over an earlier business date
        ((D2, 4), (D1, 5), False),  # an earlier sequence loses to an earlier business date
        ((D1, 5), (D1, 5), True),  # the same event (several lines of one snapshot) applies
        ((D2, None), (D1, 5), True),  # unsequenced: the business date decides
        ((D1, None), (D2, 5), False),
        ((D1, None), (D1, 5), True),  # the same date applies
        ((D1, 5), (D1, None), True),
        ((D1, 5), (D2, None), False),
        ((None, 3), (None, 4), False),  # sequence only (risk.assessed carries no date)
        ((None, 4), (None, 4), True),
        ((None, None), (None, 4), True),  # nothing to tell by: applies
        ((D1, None), (None, 4), True),
    ],
)
def test_a_snapshot_supersedes_the_stored_one_unless_it_is_older(
    new: tuple[date | None, int | None], stored: tuple[date | None, int | None], applies: bool
) -> None:
    assert (
        supersedes(business_date=new[0], sequence=new[1], stored_date=stored[0], stored_sequence=stored[1]) is applies
    )


@pytest.mark.parametrize(
    ("sequence", "snapshot_sequence", "included"),
    [
        (4, 5, True),  # the snapshot came after the payment: it counts it already
        (6, 5, False),
        (5, 5, False),
        (None, 5, False),  # an unsequenced payment applies; the next snapshot corrects any drift
        (4, None, False),
        (None, None, False),
    ],
)
def test_a_delta_older_than_the_snapshot_is_in_it(
    sequence: int | None, snapshot_sequence: int | None, included: bool
) -> None:
    assert included_in_snapshot(sequence=sequence, snapshot_sequence=snapshot_sequence) is included
