"""Tables of the catalog and of live sessions."""

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
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Timestamped

ID = String(40)


class Farmer(Timestamped, Base):
    __tablename__ = "farmers"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    region: Mapped[str] = mapped_column(String(120), nullable=False)


class Product(Timestamped, Base):
    __tablename__ = "products"
    __table_args__ = (CheckConstraint("unit_price > 0", name="unit_price_positive"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    farmer_id: Mapped[str] = mapped_column(ForeignKey("farmers.id"), index=True, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    unit: Mapped[str] = mapped_column(String(40), nullable=False)
    unit_price: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(String(500))
    origin: Mapped[str | None] = mapped_column(String(120))


class Charity(Timestamped, Base):
    __tablename__ = "charities"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    admin_user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True, nullable=False)


class Campaign(Timestamped, Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("unit_cost > 0", name="unit_cost_positive"),
        CheckConstraint("goal_units > 0", name="goal_units_positive"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    charity_id: Mapped[str] = mapped_column(ForeignKey("charities.id"), index=True, nullable=False)
    title: Mapped[str] = mapped_column(String(120), nullable=False)
    unit_name: Mapped[str] = mapped_column(String(60), nullable=False)
    unit_cost: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    goal_units: Mapped[int] = mapped_column(Integer, nullable=False)


class LiveSession(Timestamped, Base):
    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint("status IN ('scheduled','live','ended')", name="known_status"),
        Index("ix_sessions_status_scheduled_at", "status", "scheduled_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    host_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True, nullable=False)
    title: Mapped[str] = mapped_column(String(160), nullable=False)
    charity_id: Mapped[str] = mapped_column(ForeignKey("charities.id"), nullable=False)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("campaigns.id"))
    stream_url: Mapped[str | None] = mapped_column(String(500))
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="scheduled")
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pinned_listing_id: Mapped[str | None] = mapped_column(ForeignKey("listings.id", use_alter=True))


class Listing(Timestamped, Base):
    __tablename__ = "listings"
    __table_args__ = (
        UniqueConstraint("session_id", "product_id"),
        CheckConstraint("price > 0", name="price_positive"),
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("pledge_bps BETWEEN 0 AND 10000", name="pledge_bps_range"),
        CheckConstraint(
            "pledge_per_unit >= 0 AND pledge_per_unit <= price", name="pledge_per_unit_range"
        ),
        CheckConstraint("NOT (pledge_bps > 0 AND pledge_per_unit > 0)", name="one_pledge_kind"),
        CheckConstraint(
            "max_per_buyer IS NULL OR max_per_buyer > 0", name="max_per_buyer_positive"
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True, nullable=False)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True, nullable=False)
    price: Mapped[int] = mapped_column(BigInteger, nullable=False)
    stock: Mapped[int] = mapped_column(Integer, nullable=False)
    pledge_bps: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    pledge_per_unit: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    max_per_buyer: Mapped[int | None] = mapped_column(Integer)
