"""Writing domain postings into ``ledger_entries`` (the double-entry ledger of record)."""
from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from services.accounts.domain.ledger import Posting
from services.accounts.models import LedgerEntry
from shared.money import to_fen


def posting_rows(posting: Posting, *, account_pk: int, bill_pk: int | None, business_date: date,
                 posting_id: str) -> list[dict[str, Any]]:
    """The ``ledger_entries`` rows of one balanced posting (the domain refused to build an
    unbalanced one), so a set-based writer can gather many postings into one insert."""
    return [
        {
            "posting_id": posting_id, "account_pk": account_pk, "bill_pk": bill_pk, "business_date": business_date,
            "ledger_account": str(line.account), "debit_fen": to_fen(line.debit), "credit_fen": to_fen(line.credit),
            "kind": posting.memo[:32],
        }
        for line in posting.lines
    ]


def post(session: Session, posting: Posting, *, account_pk: int, bill_pk: int | None, business_date: date,
         posting_id: str) -> None:
    """Insert one balanced posting."""
    post_many(session, posting_rows(posting, account_pk=account_pk, bill_pk=bill_pk, business_date=business_date,
                                    posting_id=posting_id))


def post_many(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert the rows of many postings (built by :func:`posting_rows`) in one statement."""
    if rows:
        session.execute(insert(LedgerEntry), rows)
