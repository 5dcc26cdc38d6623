"""``credit.line.granted``: the opening dates and incomes of a run at once.

Lines are granted in bulk, so the grants are taken as a run on a
:class:`~services.restructuring.projection.ProjectionRun`: one ``SELECT`` of the run's
projection rows, the grants folded over them in message order, one upsert of the rows
that changed, instead of two or three statements per grant.

Of a grant only the opening date (months on book) and the declared income (debt to
income) are kept, each the first one known: a row that events about bills created
first gets them from the grant, a line granted again (stored, or earlier in the run)
changes only what is still unknown. Names and phones belong to the services that
contact people.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.restructuring.projection import ProjectionRun
from shared.bus.handling import HandlerContext
from shared.events import payloads as p
from shared.money import to_fen

_GRANT_COLUMNS = ("opened_on", "monthly_income_fen")  # what a grant may fill in on a stored row


def credit_line_granted_batch(items: Sequence[tuple[HandlerContext, p.CreditLineGranted]]) -> None:
    """The run's grants on the projection, applied one after the other in message order."""
    if not items:
        return
    run = ProjectionRun(items[0][0].session, {event.account_id for _, event in items}, set(), account_bills=False)
    for _, event in items:
        account = run.account(event.account_id)  # first mention of the line: a new row
        if account.opened_on is None:
            account.opened_on = event.opened_on
            run.changed(account)
        if account.monthly_income_fen is None and event.monthly_income is not None:
            account.monthly_income_fen = to_fen(event.monthly_income)
            run.changed(account)
    run.write(items[0][0], account_columns=_GRANT_COLUMNS)
