"""dead letters can be discarded on the record (discarded_at, discard_reason)

Revision ID: 0002
Revises: 0001
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("discarded_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("dead_letters", sa.Column("discard_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_column("discard_reason")
        batch.drop_column("discarded_at")
