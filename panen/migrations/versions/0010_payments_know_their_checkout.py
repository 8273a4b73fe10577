"""payments record how they are paid: the method, the gateway's checkout, manual refunds

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("method", sa.String(32)))
    op.add_column("payments", sa.Column("checkout_url", sa.Text()))
    op.add_column("payments", sa.Column("checkout_token", sa.String(120)))
    op.add_column("payments", sa.Column("checkout_expires_at", sa.DateTime(timezone=True)))
    op.add_column(
        "payments",
        sa.Column("refund_by_hand", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    for column in ("refund_by_hand", "checkout_expires_at", "checkout_token", "checkout_url"):
        op.drop_column("payments", column)
    op.drop_column("payments", "method")
