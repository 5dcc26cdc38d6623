"""Which of two snapshots of one thing is the newer: the one ordering rule of every service.

Events are not ordered on the bus (ARCHITECTURE: "Order is not guaranteed. Events carry
a per-aggregate sequence number; a consumer never lets an older event overwrite newer
state"). An absolute snapshot (``account.delinquency.updated``, ``account.cured``,
``bill.overdue``, ``risk.assessed``) is stored with the stamp it came with, its
business date and its envelope's ``sequence``, and a later snapshot replaces it only if
it is not older (:func:`supersedes`). A delta (``repayment.applied``) is applied unless
the stored snapshot is newer than it and so already includes it
(:func:`included_in_snapshot`).

The sequence decides whenever both stamps carry one: it is the producer's outbox row id,
so it orders what the producer said, and the producer's latest word is its current state
even when it is dated earlier (a cure accounts sends for a plan event dated before its
last close reflects the account as it is now). The business date decides only when a
sequence is missing (outside producers leave it null): a later date is newer, the same
date applies. docs/decisions.md ("Snapshot order").
"""

from __future__ import annotations

from datetime import date


def supersedes(
    *, business_date: date | None, sequence: int | None, stored_date: date | None, stored_sequence: int | None
) -> bool:
    """Whether a snapshot stamped (``business_date``, ``sequence``) may replace the stored
    one stamped (``stored_date``, ``stored_sequence``).

    Nothing stored: it applies. Both sequenced: the sequence decides, an equal one (the
    same event) applies. Otherwise the business dates decide, the same date applies. When
    neither can tell, it applies: the inbox already keeps an event from applying twice.
    """
    if stored_date is None and stored_sequence is None:
        return True
    if sequence is not None and stored_sequence is not None:
        return sequence >= stored_sequence
    if business_date is not None and stored_date is not None:
        return business_date >= stored_date
    return True


def included_in_snapshot(*, sequence: int | None, snapshot_sequence: int | None) -> bool:
    """Whether a delta with ``sequence`` is already in the stored snapshot of
    ``snapshot_sequence``: only when both are known and the snapshot is the later one.

    No date fallback: a payment and a snapshot of the same business date do not say which
    came first, so an unsequenced delta applies and the next snapshot corrects any drift.
    """
    return sequence is not None and snapshot_sequence is not None and sequence < snapshot_sequence
