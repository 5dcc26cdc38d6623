"""The pre-report notice as accounts learns it (``collection.notice.sent``, RULES 5.4).

Collections tells the customer, before negative information is reported (征信业管理条例
Art. 15), that an overdue bill will be reported; the event names the bills the notice was
about. Accounts keeps, on each of them, the first notice's date and channel: the monthly
report leaves a bill's overdue out until it has one (``domain/credit_report.py``,
``overdue_reportable``). A notice delivered again changes nothing (the first one stands).
"""

from __future__ import annotations

from sqlalchemy import select

from services.accounts.models import Account, Bill
from shared.bus.handling import HandlerContext
from shared.events import payloads as p
from shared.log import get_logger

log = get_logger(__name__)


def notice_sent(ctx: HandlerContext, event: p.CollectionNoticeSent) -> None:
    account_pk = ctx.session.scalar(select(Account.pk).where(Account.account_id == event.account_id))
    if account_pk is None:
        log.warning("notice_for_unknown_account", account_id=event.account_id)
        return
    bills = ctx.session.scalars(
        select(Bill)
        .where(
            Bill.account_pk == account_pk,
            Bill.bill_id.in_(event.bill_ids),
            Bill.report_notice_on.is_(None),
        )
        .with_for_update()
    ).all()
    for bill in bills:
        bill.report_notice_on = event.business_date
        bill.report_notice_channel = event.channel
