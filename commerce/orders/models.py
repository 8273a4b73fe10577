"""Tables of orders and their status history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import ID, Base, Timestamped


class Order(Timestamped, Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("buyer_id", "idempotency_key"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("total = unit_price * quantity", name="total_is_price_times_quantity"),
        CheckConstraint("total = pledge_amount + fee_amount + farmer_amount", name="split_adds_up"),
        CheckConstraint(
            "pledge_amount >= 0 AND fee_amount >= 0 AND farmer_amount >= 0",
            name="split_not_negative",
        ),
        CheckConstraint(
            "status IN ('reserved','paid','settled','completed','expired','cancelled','refunded')",
            name="known_status",
        ),
        CheckConstraint("shipping_fee >= 0 AND weight_g >= 0", name="shipping_not_negative"),
        Index("ix_orders_status_expires_at", "status", "expires_at"),
        Index("ix_orders_inventory_id_status", "inventory_id", "status"),
        Index("ix_orders_session_id_status", "session_id", "status"),
        Index("ix_orders_farmer_id_status", "farmer_id", "status"),
        Index("ix_orders_buyer_id_id", "buyer_id", "id"),
        Index("ix_orders_shipment_id", "shipment_id"),
        Index("ix_orders_shipment_key", "session_id", "buyer_id", "farmer_id", "address_id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), nullable=False)
    listing_id: Mapped[str] = mapped_column(ForeignKey("listings.id"), index=True, nullable=False)
    deal_id: Mapped[str | None] = mapped_column(ForeignKey("flash_deals.id"))
    # The stock counter the reservation came from: the listing's, or a flash deal's.
    inventory_id: Mapped[str] = mapped_column(ID, nullable=False)
    buyer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    farmer_id: Mapped[str] = mapped_column(ForeignKey("farmers.id"), nullable=False)
    charity_id: Mapped[str] = mapped_column(ForeignKey("charities.id"), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(100), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    unit_price: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total: Mapped[int] = mapped_column(BigInteger, nullable=False)
    pledge_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    farmer_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    # Where it goes, what it weighs, and what this order adds to its box's shipping fee
    # (paid with the order, outside `total`: the pledge and the platform's fee are shares
    # of the produce, never of the postage). Its box once the sale settles.
    address_id: Mapped[str | None] = mapped_column(ForeignKey("addresses.id"))
    weight_g: Mapped[int] = mapped_column(
        BigInteger, nullable=False, default=0, server_default=text("0")
    )
    shipping_fee: Mapped[int] = mapped_column(
        BigInteger, nullable=False, default=0, server_default=text("0")
    )
    shipment_id: Mapped[str | None] = mapped_column(ForeignKey("shipments.id"))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OrderStatusChange(Base):
    __tablename__ = "order_status_history"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
