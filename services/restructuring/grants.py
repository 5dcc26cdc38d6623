"""``credit.line.granted``: the opening dates and incomes of a run at once.

Lines are granted in bulk, so restructuring takes the grants as a run
(``BatchHandler``): one ``SELECT`` of the run's projection rows, the grants folded over
them in Python in message order, one upsert of the rows that changed (the statements of
``snapshots``), instead of two or three statements per grant.

Of a grant only the opening date (months on book) and the declared income (debt to
income) are kept, each the first one known: a row that events about bills created
first gets them from the grant, a line granted again (stored, or earlier in the run)
changes only what is still unknown. Names and phones belong to the services that
contact people.
"""
from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from services.restructuring.models import AccountView
from services.restructuring.snapshots import _ACCOUNTS, _new_account, _one_of, _Row, _upsert
from shared.bus.handling import HandlerContext
from shared.events import payloads as p
from shared.money import to_fen

_GRANT_SET = ("opened_on", "monthly_income_fen")  # what a grant may fill in on a stored row


def credit_line_granted_batch(items: Sequence[tuple[HandlerContext, p.CreditLineGranted]]) -> None:
    """The run's grants on the projection, as one by one in message order."""
    if not items:
        return
    session = items[0][0].session
    accounts = _stored(session, {event.account_id for _, event in items})
    changed: dict[str, _Row] = {}
    for _, event in items:
        account = accounts.get(event.account_id)
        if account is None:  # first mention of the line
            account = accounts[event.account_id] = changed[event.account_id] = _new_account(event.account_id)
        if account.opened_on is None:
            account.opened_on = event.opened_on
            changed[event.account_id] = account
        if account.monthly_income_fen is None and event.monthly_income is not None:
            account.monthly_income_fen = to_fen(event.monthly_income)
            changed[event.account_id] = account
    # in key order, as the snapshots write them: overlapping upserts lock rows in one order
    _upsert(session, _ACCOUNTS, "account_id", [changed[k].values(_ACCOUNTS.columns.keys()) for k in sorted(changed)],
            _GRANT_SET)
    _forget_loaded(session, changed)


def _stored(session: Session, account_ids: set[str]) -> dict[str, _Row]:
    session.flush()  # rows earlier handlers of this transaction created through the ORM
    postgres = session.get_bind().dialect.name == "postgresql"
    query = select(_ACCOUNTS).where(_one_of(_ACCOUNTS.c.account_id, account_ids, postgres))
    return {row["account_id"]: _Row(dict(row)) for row in session.execute(query).mappings()}


def _forget_loaded(session: Session, account_ids: dict[str, _Row]) -> None:
    """An earlier handler of this transaction may hold a row the upsert changed: reload it when next used."""
    for account_id in account_ids:
        account = session.identity_map.get(identity_key(AccountView, account_id))
        if account is not None:
            session.expire(account)
