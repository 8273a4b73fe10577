"""one payments table for orders and gifts; payments can be refunding

A gift's payment lived in columns of its donation row; it now lives in `payments`, like an
order's, so one lifecycle moves both and one sweeper returns money that arrived for
something that could no longer take it (`refunding`, until the provider returns it).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "'pending','succeeded','failed','cancelled','refunded'"
NEW_STATUSES = "'pending','succeeded','failed','cancelled','refunding','refunded'"


def upgrade() -> None:
    op.add_column("payments", sa.Column("purpose", sa.String(length=16), nullable=True))
    op.execute("UPDATE payments SET purpose = 'order'")
    op.alter_column("payments", "purpose", nullable=False)
    op.alter_column("payments", "order_id", nullable=True)
    op.drop_constraint(op.f("ck_payments_known_status"), "payments", type_="check")
    op.create_check_constraint(
        op.f("ck_payments_known_status"), "payments", f"status IN ({NEW_STATUSES})"
    )
    op.create_check_constraint(
        op.f("ck_payments_known_purpose"), "payments", "purpose IN ('order','gift')"
    )
    op.create_check_constraint(
        op.f("ck_payments_order_has_its_id"),
        "payments",
        "(purpose = 'order') = (order_id IS NOT NULL)",
    )
    op.execute(
        "INSERT INTO payments (id, purpose, order_id, payer_id, provider, provider_ref, status,"
        " amount, currency, created_at, updated_at)"
        " SELECT payment_id, 'gift', NULL, donor_id, provider, provider_ref, payment_status,"
        " amount, currency, created_at, coalesce(paid_at, created_at) FROM donations"
    )
    op.drop_constraint(op.f("ck_donations_known_payment_status"), "donations", type_="check")
    op.drop_column("donations", "payment_status")
    op.drop_column("donations", "provider_ref")
    op.drop_column("donations", "provider")
    op.create_foreign_key(
        op.f("fk_donations_payment_id_payments"),
        "donations",
        "payments",
        ["payment_id"],
        ["id"],
        deferrable=True,
        initially="DEFERRED",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("fk_donations_payment_id_payments"), "donations", type_="foreignkey")
    op.add_column("donations", sa.Column("provider", sa.String(length=32), nullable=True))
    op.add_column("donations", sa.Column("provider_ref", sa.String(length=120), nullable=True))
    op.add_column("donations", sa.Column("payment_status", sa.String(length=16), nullable=True))
    # The old states had no `refunding`: a refund asked for is shown as done.
    op.execute(
        "UPDATE donations d SET provider = p.provider, provider_ref = p.provider_ref,"
        " payment_status = CASE p.status WHEN 'refunding' THEN 'refunded' ELSE p.status END"
        " FROM payments p WHERE p.id = d.payment_id"
    )
    op.alter_column("donations", "provider", nullable=False)
    op.alter_column("donations", "payment_status", nullable=False)
    op.create_check_constraint(
        op.f("ck_donations_known_payment_status"),
        "donations",
        f"payment_status IN ({OLD_STATUSES})",
    )
    op.execute("DELETE FROM payments WHERE purpose = 'gift'")
    op.execute("UPDATE payments SET status = 'refunded' WHERE status = 'refunding'")
    op.drop_constraint(op.f("ck_payments_order_has_its_id"), "payments", type_="check")
    op.drop_constraint(op.f("ck_payments_known_purpose"), "payments", type_="check")
    op.drop_constraint(op.f("ck_payments_known_status"), "payments", type_="check")
    op.create_check_constraint(
        op.f("ck_payments_known_status"), "payments", f"status IN ({OLD_STATUSES})"
    )
    op.alter_column("payments", "order_id", nullable=False)
    op.drop_column("payments", "purpose")
