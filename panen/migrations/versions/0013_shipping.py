"""the produce delivered: addresses, shipping rates, shipments; orders complete

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORDER_STATUSES = "'reserved','paid','settled','completed','expired','cancelled','refunded'"
OLD_ORDER_STATUSES = "'reserved','paid','settled','expired','cancelled','refunded'"


def _created() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "addresses",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("label", sa.String(40)),
        sa.Column("recipient", sa.String(120), nullable=False),
        sa.Column("phone", sa.String(24), nullable=False),
        sa.Column("street", sa.String(300), nullable=False),
        sa.Column("district", sa.String(120), nullable=False),
        sa.Column("city", sa.String(120), nullable=False),
        sa.Column("province", sa.String(60), nullable=False),
        sa.Column("postal_code", sa.String(5), nullable=False),
        sa.Column("notes", sa.String(200)),
        sa.Column("zone", sa.String(30), nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("archived", sa.Boolean(), server_default=sa.false(), nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_addresses")),
    )
    op.create_index(
        "uq_addresses_default",
        "addresses",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text("is_default AND NOT archived"),
    )
    op.create_index("ix_addresses_user_id", "addresses", ["user_id", "archived"])
    op.create_table(
        "shipping_rates",
        sa.Column("farmer_id", sa.String(40), sa.ForeignKey("farmers.id"), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("zone", sa.String(30), nullable=False),
        sa.PrimaryKeyConstraint("farmer_id", "currency", "zone", name=op.f("pk_shipping_rates")),
        sa.Column("base_fee", sa.BigInteger(), nullable=False),
        sa.Column("per_kg_fee", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "base_fee >= 0 AND per_kg_fee >= 0", name=op.f("ck_shipping_rates_fees_not_negative")
        ),
    )
    op.create_table(
        "shipments",
        sa.Column("id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipments")),
        sa.Column("session_id", sa.String(40), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("buyer_id", sa.String(40), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("farmer_id", sa.String(40), sa.ForeignKey("farmers.id"), nullable=False),
        sa.Column("address_id", sa.String(40), sa.ForeignKey("addresses.id"), nullable=False),
        sa.Column("recipient", sa.String(120), nullable=False),
        sa.Column("phone", sa.String(24), nullable=False),
        sa.Column("street", sa.String(300), nullable=False),
        sa.Column("district", sa.String(120), nullable=False),
        sa.Column("city", sa.String(120), nullable=False),
        sa.Column("province", sa.String(60), nullable=False),
        sa.Column("postal_code", sa.String(5), nullable=False),
        sa.Column("notes", sa.String(200)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("courier", sa.String(40)),
        sa.Column("tracking_number", sa.String(60)),
        sa.Column("failure_reason", sa.String(500)),
        sa.Column("packed_at", sa.DateTime(timezone=True)),
        sa.Column("shipped_at", sa.DateTime(timezone=True)),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        _created(),
        sa.CheckConstraint(
            "status IN ('packing','packed','shipped','delivered','completed','failed','cancelled')",
            name=op.f("ck_shipments_known_status"),
        ),
    )
    op.create_index(
        "uq_shipments_packing",
        "shipments",
        ["session_id", "buyer_id", "farmer_id", "address_id"],
        unique=True,
        postgresql_where=sa.text("status = 'packing'"),
    )
    op.create_index("ix_shipments_farmer_session", "shipments", ["farmer_id", "session_id"])
    op.create_index("ix_shipments_buyer_id", "shipments", ["buyer_id", "id"])
    op.create_index("ix_shipments_status_delivered_at", "shipments", ["status", "delivered_at"])
    op.create_table(
        "shipment_status_history",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipment_status_history")),
        sa.Column("shipment_id", sa.String(40), sa.ForeignKey("shipments.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("by", sa.String(40)),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index(
        op.f("ix_shipment_status_history_shipment_id"), "shipment_status_history", ["shipment_id"]
    )
    op.add_column(
        "products", sa.Column("weight_g", sa.Integer(), server_default="1000", nullable=False)
    )
    op.create_check_constraint(op.f("ck_products_weight_positive"), "products", "weight_g > 0")
    op.add_column("orders", sa.Column("address_id", sa.String(40), nullable=True))
    op.add_column(
        "orders", sa.Column("weight_g", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column(
        "orders", sa.Column("shipping_fee", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column("orders", sa.Column("shipment_id", sa.String(40), nullable=True))
    op.add_column("orders", sa.Column("completed_at", sa.DateTime(timezone=True)))
    op.create_foreign_key(
        op.f("fk_orders_address_id_addresses"), "orders", "addresses", ["address_id"], ["id"]
    )
    op.create_foreign_key(
        op.f("fk_orders_shipment_id_shipments"), "orders", "shipments", ["shipment_id"], ["id"]
    )
    op.create_check_constraint(
        op.f("ck_orders_shipping_not_negative"), "orders", "shipping_fee >= 0 AND weight_g >= 0"
    )
    op.create_index("ix_orders_shipment_id", "orders", ["shipment_id"])
    op.create_index(
        "ix_orders_shipment_key", "orders", ["session_id", "buyer_id", "farmer_id", "address_id"]
    )
    op.drop_constraint(op.f("ck_orders_known_status"), "orders", type_="check")
    op.create_check_constraint(
        op.f("ck_orders_known_status"), "orders", f"status IN ({ORDER_STATUSES})"
    )
    # Before shipping existed a settled sale was final: it stays so.
    op.execute(
        "UPDATE orders SET status = 'completed', completed_at = settled_at WHERE status = 'settled'"
    )
    op.add_column(
        "charity_funds",
        sa.Column("held", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("charity_funds", "held")
    op.execute("UPDATE orders SET status = 'settled' WHERE status = 'completed'")
    op.drop_constraint(op.f("ck_orders_known_status"), "orders", type_="check")
    op.create_check_constraint(
        op.f("ck_orders_known_status"), "orders", f"status IN ({OLD_ORDER_STATUSES})"
    )
    op.drop_index("ix_orders_shipment_key", "orders")
    op.drop_index("ix_orders_shipment_id", "orders")
    op.drop_constraint(op.f("ck_orders_shipping_not_negative"), "orders", type_="check")
    op.drop_constraint(op.f("fk_orders_shipment_id_shipments"), "orders", type_="foreignkey")
    op.drop_constraint(op.f("fk_orders_address_id_addresses"), "orders", type_="foreignkey")
    for column in ("completed_at", "shipment_id", "shipping_fee", "weight_g", "address_id"):
        op.drop_column("orders", column)
    op.drop_constraint(op.f("ck_products_weight_positive"), "products", type_="check")
    op.drop_column("products", "weight_g")
    op.drop_table("shipment_status_history")
    op.drop_table("shipments")
    op.drop_table("shipping_rates")
    op.drop_table("addresses")
