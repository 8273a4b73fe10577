"""Tables of live sessions and their listings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false, text

from core.db import ID, Base, Timestamped


class LiveSession(Timestamped, Base):
    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint("status IN ('scheduled','live','ended')", name="known_status"),
        CheckConstraint("slow_mode_s BETWEEN 0 AND 3600", name="slow_mode_range"),
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
    # Donor messages reach the room only once the host approves each (the read-out queue).
    moderate_messages: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    # The room's chat rules (docs/api.md, "Chat rules"): a viewer's lines at least this far
    # apart, lines holding one of these words or phrases refused, one message pinned on top.
    slow_mode_s: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    blocked_words: Mapped[list[str]] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'")
    )
    pinned_message: Mapped[str | None] = mapped_column(String(200))
    pinned_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ChatBan(Timestamped, Base):
    """A viewer a host has banned: silent in every room of that host's until unbanned (a
    mute lasts one session)."""

    __tablename__ = "chat_bans"

    host_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(80), nullable=False)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id"))  # banned from
    reason: Mapped[str | None] = mapped_column(String(200))


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
