"""collections keeps its job runs (catch-up) and the pre-report notice of each bill

Revision ID: 0003_collections_job_runs
Revises: 0002
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003_collections_job_runs"
down_revision: Union[str, None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("job", "business_date", name=op.f("pk_job_runs")),
    )
    op.add_column("bills", sa.Column("report_notice_on", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bills") as batch:
        batch.drop_column("report_notice_on")
    op.drop_table("job_runs")
