"""bills keep the principal set aside by open disputes (not collected)

Revision ID: 0005_bill_disputed
Revises: 0004_case_delinquency_pause
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005_bill_disputed"
down_revision: Union[str, None] = "0004_case_delinquency_pause"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("bills", sa.Column("disputed_fen", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("bills") as batch:
        batch.drop_column("disputed_fen")
