"""sponsors top up through the payment providers

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sponsor_top_ups",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("sponsor_id", sa.String(40), nullable=False),
        sa.Column("idempotency_key", sa.String(100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payment_id", sa.String(40), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_sponsor_top_ups_amount_positive")),
        sa.CheckConstraint(
            "status IN ('pending','paid','failed')", name=op.f("ck_sponsor_top_ups_known_status")
        ),
        sa.ForeignKeyConstraint(
            ["sponsor_id"], ["users.id"], name=op.f("fk_sponsor_top_ups_sponsor_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_sponsor_top_ups_payment_id_payments"),
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sponsor_top_ups")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_sponsor_top_ups_payment_id")),
        sa.UniqueConstraint(
            "sponsor_id",
            "idempotency_key",
            name=op.f("uq_sponsor_top_ups_sponsor_id_idempotency_key"),
        ),
    )
    op.create_index(op.f("ix_sponsor_top_ups_sponsor_id"), "sponsor_top_ups", ["sponsor_id"])
    op.drop_constraint(op.f("ck_payments_known_purpose"), "payments", type_="check")
    op.create_check_constraint(
        op.f("ck_payments_known_purpose"), "payments", "purpose IN ('order','gift','top_up')"
    )


def downgrade() -> None:
    op.drop_table("sponsor_top_ups")
    op.execute("DELETE FROM payments WHERE purpose = 'top_up'")
    op.drop_constraint(op.f("ck_payments_known_purpose"), "payments", type_="check")
    op.create_check_constraint(
        op.f("ck_payments_known_purpose"), "payments", "purpose IN ('order','gift')"
    )
