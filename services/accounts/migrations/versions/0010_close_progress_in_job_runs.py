"""the daily close's progress lives in its date's job_runs row: closed_chunks goes

Revision ID: 0010_close_progress_in_job_runs
Revises: 0009_disputes
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0010_close_progress_in_job_runs"
down_revision: Union[str, None] = "0009_disputes"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.drop_table("closed_chunks")


def downgrade() -> None:
    op.create_table(
        "closed_chunks",
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("first_pk", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_date", "first_pk", name=op.f("pk_closed_chunks")),
    )
