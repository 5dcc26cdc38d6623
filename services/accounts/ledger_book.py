"""Writing domain postings into ``ledger_entries`` (the double-entry ledger of record)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from services.accounts.domain.ledger import Posting
from services.accounts.models import LedgerEntry
from shared.money import to_fen


def posting_rows(
    posting: Posting, *, account_pk: int, bill_pk: int | None, business_date: date, posting_id: str
) -> list[dict[str, Any]]:
    """The ``ledger_entries`` rows of one balanced posting (the domain refused to build an
    unbalanced one), so a set-based writer can gather many postings into one insert."""
    return [
        {
            "posting_id": posting_id,
            "account_pk": account_pk,
            "bill_pk": bill_pk,
            "business_date": business_date,
            "ledger_account": str(line.account),
            "debit_fen": to_fen(line.debit),
            "credit_fen": to_fen(line.credit),
            "kind": posting.memo[:32],
        }
        for line in posting.lines
    ]


def post(
    session: Session, posting: Posting, *, account_pk: int, bill_pk: int | None, business_date: date, posting_id: str
) -> None:
    """Insert one balanced posting."""
    post_many(
        session,
        posting_rows(
            posting, account_pk=account_pk, bill_pk=bill_pk, business_date=business_date, posting_id=posting_id
        ),
    )


def post_many(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert the rows of many postings (built by :func:`posting_rows`) in one statement
    (or keep them, in order, for the end of a run that holds its postings)."""
    held = session.info.get(_HELD)
    if held is not None:
        held.extend(rows)
    elif rows:
        session.execute(insert(LedgerEntry), rows)


_HELD = "accounts.postings_held"


@contextmanager
def postings_held(session: Session) -> Iterator[None]:
    """Keep every posting made inside the block and insert them, in the order they were
    made, with one statement when it ends (nothing if it raises: the transaction is lost
    anyway). For runs that post once or more per event and never read the ledger back."""
    if _HELD in session.info:  # an outer block holds them already
        yield
        return
    session.info[_HELD] = []
    try:
        yield
        rows = session.info.pop(_HELD)
        post_many(session, rows)
    finally:
        session.info.pop(_HELD, None)
