"""the desk's worklist order read from an index: open tasks by DPD, amount owed, task id

Revision ID: 0006_worklist_order_index
Revises: 0005_bill_disputed

``ix_collector_tasks_open`` (status, dpd) gave the worklist its first sort key only: a page
of 100,000 open tasks read hundreds of rows in DPD order, then sorted them by amount
(``bench desk``: EXPLAIN ANALYZE, 841 rows read for a page at offset 200). The partial
index holds only the open tasks, in the worklist's order; the second lets a collector's
count and page reach their own accounts' open tasks only.
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006_worklist_order_index"
down_revision: Union[str, None] = "0005_bill_disputed"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.drop_index("ix_collector_tasks_open", table_name="collector_tasks")
    op.create_index(
        "ix_collector_tasks_worklist",
        "collector_tasks",
        [sa.text("dpd DESC"), sa.text("amount_fen DESC"), "task_id"],
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )
    op.create_index(
        "ix_collector_tasks_open_account", "collector_tasks", ["account_id"], postgresql_where=OPEN, sqlite_where=OPEN
    )


def downgrade() -> None:
    op.drop_index("ix_collector_tasks_open_account", table_name="collector_tasks")
    op.drop_index("ix_collector_tasks_worklist", table_name="collector_tasks")
    op.create_index("ix_collector_tasks_open", "collector_tasks", ["status", "dpd"])
