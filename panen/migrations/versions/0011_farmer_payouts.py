"""farmers' payout accounts and payouts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _stamps() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "payout_accounts",
        sa.Column("farmer_id", sa.String(40), nullable=False),
        sa.Column("bank", sa.String(20), nullable=False),
        sa.Column("account_number", sa.String(30), nullable=False),
        sa.Column("holder_name", sa.String(120), nullable=False),
        *_stamps(),
        sa.ForeignKeyConstraint(
            ["farmer_id"], ["farmers.id"], name=op.f("fk_payout_accounts_farmer_id_farmers")
        ),
        sa.PrimaryKeyConstraint("farmer_id", name=op.f("pk_payout_accounts")),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("run_id", sa.String(60), nullable=False),
        sa.Column("farmer_id", sa.String(40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("provider_ref", sa.String(120)),
        sa.Column("bank", sa.String(20), nullable=False),
        sa.Column("account_number", sa.String(30), nullable=False),
        sa.Column("holder_name", sa.String(120), nullable=False),
        sa.Column("failure_reason", sa.Text()),
        *_stamps(),
        sa.CheckConstraint(
            "status IN ('pending','submitted','completed','failed')",
            name=op.f("ck_payouts_known_status"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payouts_amount_positive")),
        sa.ForeignKeyConstraint(
            ["farmer_id"], ["farmers.id"], name=op.f("fk_payouts_farmer_id_farmers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint(
            "run_id", "farmer_id", "currency", name=op.f("uq_payouts_run_id_farmer_id_currency")
        ),
    )
    op.create_index(op.f("ix_payouts_run_id"), "payouts", ["run_id"])
    op.create_index(op.f("ix_payouts_farmer_id"), "payouts", ["farmer_id"])


def downgrade() -> None:
    op.drop_table("payouts")
    op.drop_table("payout_accounts")
