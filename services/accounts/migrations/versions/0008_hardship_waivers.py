"""waivers: operators' hardship waivers of penalty interest and late fees (maker-checker)

Revision ID: 0008_hardship_waivers
Revises: 0007_delinquency_pause
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008_hardship_waivers"
down_revision: Union[str, None] = "0007_delinquency_pause"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "waivers",
        sa.Column("waiver_id", sa.String(64), primary_key=True),
        sa.Column("account_pk", sa.BigInteger(), sa.ForeignKey("accounts.pk"), nullable=False),
        sa.Column("bill_pk", sa.BigInteger(), sa.ForeignKey("bills.pk"), nullable=False),
        sa.Column("component", sa.String(16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(24), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requested_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_on", sa.Date(), nullable=True),
        sa.Column("applied_fen", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_waivers_account_pk", "waivers", ["account_pk"])


def downgrade() -> None:
    op.drop_index("ix_waivers_account_pk", table_name="waivers")
    op.drop_table("waivers")
