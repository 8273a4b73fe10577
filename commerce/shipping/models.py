"""Tables of shipping: addresses, farmers' rates, shipments and their history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from core.db import ID, Base, Timestamped


class Address(Timestamped, Base):
    """A buyer's shipping address. Never edited in place: an order names the address it was
    bought for, and its fee was priced for that address's zone, so an edit is a new row and
    the old one is archived."""

    __tablename__ = "addresses"
    __table_args__ = (
        # At most one default per buyer.
        Index(
            "uq_addresses_default",
            "user_id",
            unique=True,
            postgresql_where=text("is_default AND NOT archived"),
        ),
        Index("ix_addresses_user_id", "user_id", "archived"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    label: Mapped[str | None] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(120), nullable=False)
    phone: Mapped[str] = mapped_column(String(24), nullable=False)
    street: Mapped[str] = mapped_column(String(300), nullable=False)
    district: Mapped[str] = mapped_column(String(120), nullable=False)  # kecamatan
    city: Mapped[str] = mapped_column(String(120), nullable=False)  # kota or kabupaten
    province: Mapped[str] = mapped_column(String(60), nullable=False)
    postal_code: Mapped[str] = mapped_column(String(5), nullable=False)
    notes: Mapped[str | None] = mapped_column(String(200))
    zone: Mapped[str] = mapped_column(String(30), nullable=False)
    is_default: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    archived: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )


class ShippingRate(Base):
    """What a farmer charges to ship to a zone (`*`: every zone without its own rate), in
    one currency: `base_fee + per_kg_fee × kg`. A farmer with no rate in a currency ships
    for free in it; one with rates ships only where a rate applies."""

    __tablename__ = "shipping_rates"
    __table_args__ = (
        CheckConstraint("base_fee >= 0 AND per_kg_fee >= 0", name="fees_not_negative"),
    )

    farmer_id: Mapped[str] = mapped_column(ForeignKey("farmers.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    zone: Mapped[str] = mapped_column(String(30), primary_key=True)
    base_fee: Mapped[int] = mapped_column(BigInteger, nullable=False)
    per_kg_fee: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Shipment(Timestamped, Base):
    """One box: a session's paid orders from one farmer to one buyer's address. The address
    is copied in when the box is opened, so what the farmer packs for never changes."""

    __tablename__ = "shipments"
    __table_args__ = (
        CheckConstraint(
            "status IN ('packing','packed','shipped','delivered','completed','failed','cancelled')",
            name="known_status",
        ),
        # One box still being packed per (session, buyer, farmer, address): a sale that
        # settles joins it; once it is packed, a later sale opens the next box.
        Index(
            "uq_shipments_packing",
            "session_id",
            "buyer_id",
            "farmer_id",
            "address_id",
            unique=True,
            postgresql_where=text("status = 'packing'"),
        ),
        Index("ix_shipments_farmer_session", "farmer_id", "session_id"),
        Index("ix_shipments_buyer_id", "buyer_id", "id"),
        Index("ix_shipments_status_delivered_at", "status", "delivered_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), nullable=False)
    buyer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    farmer_id: Mapped[str] = mapped_column(ForeignKey("farmers.id"), nullable=False)
    address_id: Mapped[str] = mapped_column(ForeignKey("addresses.id"), nullable=False)
    recipient: Mapped[str] = mapped_column(String(120), nullable=False)
    phone: Mapped[str] = mapped_column(String(24), nullable=False)
    street: Mapped[str] = mapped_column(String(300), nullable=False)
    district: Mapped[str] = mapped_column(String(120), nullable=False)
    city: Mapped[str] = mapped_column(String(120), nullable=False)
    province: Mapped[str] = mapped_column(String(60), nullable=False)
    postal_code: Mapped[str] = mapped_column(String(5), nullable=False)
    notes: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    courier: Mapped[str | None] = mapped_column(String(40))
    tracking_number: Mapped[str | None] = mapped_column(String(60))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    packed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ShipmentStatusChange(Base):
    __tablename__ = "shipment_status_history"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    shipment_id: Mapped[str] = mapped_column(ForeignKey("shipments.id"), index=True, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    by: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
