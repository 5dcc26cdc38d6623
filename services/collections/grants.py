"""``credit.line.granted``: keep the contact data and open the cases of a run at once.

Lines are granted in bulk, so collections takes the grants as a run (``BatchHandler``):
two statements for the whole run instead of four per grant.

1. one upsert of the customers: a new line stores its customer; a line granted again
   (stored, or earlier in the run) keeps its customer id and opening date and takes
   the contact data of the latest grant, as one grant after another would leave it;
2. one ``INSERT .. ON CONFLICT DO NOTHING`` of the cases not open yet, opened on the
   first grant's date (what ``ensure_case`` creates; a stored case is left as it is).

Name and phone are personal data: stored in ``customers`` only, never logged. A failing
statement's message would carry its parameters (a run's names and phones) into the
warning and the dead letter the applier writes, so they are hidden from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import StatementError

from services.collections.casebook import open_missing_cases
from services.collections.models import Customer
from shared.bus.handling import HandlerContext
from shared.db import expire_loaded, upsert
from shared.events import payloads as p

CUSTOMERS = Customer.__table__


def credit_line_granted_batch(items: list[tuple[HandlerContext, p.CreditLineGranted]]) -> None:
    """The run's customers and cases, as the grants one by one in message order leave them."""
    if not items:
        return
    session = items[0][0].session
    customers: dict[str, dict[str, Any]] = {}  # by account, in the order of their first grant
    for _, event in items:
        customer = customers.get(event.account_id)
        if customer is None:
            customers[event.account_id] = {
                "account_id": event.account_id,
                "customer_id": event.customer_id,
                "name": event.name,
                "phone": event.phone,
                "opened_on": event.opened_on,
            }
        else:  # granted again: the current contact data
            customer["name"], customer["phone"] = event.name, event.phone
    session.flush()  # what earlier handlers of this transaction added through the ORM, before Core writes
    with _contact_data_hidden():
        upsert(session, CUSTOMERS, list(customers.values()), key="account_id", update=("name", "phone"))
    open_missing_cases(session, {account_id: customer["opened_on"] for account_id, customer in customers.items()})
    expire_loaded(session, Customer, customers)  # an earlier handler may hold the old contact data


@contextmanager
def _contact_data_hidden() -> Iterator[None]:
    """A statement error raised here renders without its parameters (names and phones)."""
    try:
        yield
    except StatementError as exc:
        exc.hide_parameters = True
        raise
