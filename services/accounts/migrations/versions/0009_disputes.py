"""disputes, and the principal each bill has set aside by open disputes

Revision ID: 0009_disputes
Revises: 0008_hardship_waivers
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0009_disputes"
down_revision: Union[str, None] = "0008_hardship_waivers"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("bills", sa.Column("disputed_fen", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_table(
        "disputes",
        sa.Column("dispute_id", sa.String(64), primary_key=True),
        sa.Column("account_pk", sa.BigInteger(), sa.ForeignKey("accounts.pk"), nullable=False),
        sa.Column("bill_pk", sa.BigInteger(), sa.ForeignKey("bills.pk"), nullable=False),
        sa.Column("purchase_id", sa.String(64), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(24), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True),
        sa.Column("resolved_on", sa.Date(), nullable=True),
        sa.Column("credited_fen", sa.BigInteger(), nullable=False),
        sa.Column("charges_reversed_fen", sa.BigInteger(), nullable=False),
        sa.Column("alerted_on", sa.Date(), nullable=True),
    )
    op.create_index("ix_disputes_account_pk", "disputes", ["account_pk"])


def downgrade() -> None:
    op.drop_index("ix_disputes_account_pk", table_name="disputes")
    op.drop_table("disputes")
    with op.batch_alter_table("bills") as batch:
        batch.drop_column("disputed_fen")
