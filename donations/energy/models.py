"""Tables of the energy points book, its lots, the sponsor pools and redemptions.

The book is double-entry like the money ledger: a points transaction's postings sum to
zero over accounts `user:{id}`, `issued:{source}`, `pool:{id}` and `expired`. A balance is
always a sum of postings, never a stored counter; a lot's remaining points are the sum of
the user-account postings that name it. Append-only, enforced by the database.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import ID, Base, Timestamped


class PointsTransaction(Base):
    """One movement of points. `points` is the user's side (earned > 0, spent < 0), kept
    so caps read one row per movement; `slot` is the watch minute a watch award pays."""

    __tablename__ = "points_transactions"
    __table_args__ = (
        Index("ix_points_transactions_user_kind_day", "user_id", "kind", "day"),
        Index("ix_points_transactions_user_session_kind", "user_id", "session_id", "kind"),
        Index("ix_points_transactions_device_slot", "device", "slot"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    # What paid it (`watch:{user}:{slot}`, `purchase:{order}`): unique, so it pays once.
    reference: Mapped[str] = mapped_column(String(160), unique=True, nullable=False)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    session_id: Mapped[str | None] = mapped_column(String(40))
    device: Mapped[str | None] = mapped_column(String(64))
    slot: Mapped[int | None] = mapped_column(BigInteger)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    points: Mapped[int] = mapped_column(BigInteger, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class PointsLot(Base):
    """Points earned together, expiring together; spent oldest-expiring first."""

    __tablename__ = "points_lots"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        Index("ix_points_lots_user_id_expires_at", "user_id", "expires_at"),
        Index("ix_points_lots_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    transaction_id: Mapped[str] = mapped_column(
        ForeignKey("points_transactions.id"), nullable=False, unique=True
    )
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    points: Mapped[int] = mapped_column(BigInteger, nullable=False)
    earned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class PointsPosting(Base):
    __tablename__ = "points_postings"
    __table_args__ = (CheckConstraint("amount <> 0", name="amount_not_zero"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(
        ForeignKey("points_transactions.id"), index=True, nullable=False
    )
    account: Mapped[str] = mapped_column(String(80), index=True, nullable=False)
    lot_id: Mapped[str | None] = mapped_column(ForeignKey("points_lots.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)


class PointsPool(Timestamped, Base):
    """A sponsor's money for a charity (or one campaign), paid out as users redeem points:
    `rate_points` points are worth `rate_amount` minor units, up to `cap` in total."""

    __tablename__ = "points_pools"
    __table_args__ = (
        CheckConstraint("rate_points > 0", name="rate_points_positive"),
        CheckConstraint("rate_amount > 0", name="rate_amount_positive"),
        CheckConstraint("cap > 0", name="cap_positive"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    sponsor_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    sponsor_name: Mapped[str] = mapped_column(String(120), nullable=False)
    charity_id: Mapped[str] = mapped_column(ForeignKey("charities.id"), index=True, nullable=False)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("campaigns.id"))
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id"))
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    rate_points: Mapped[int] = mapped_column(Integer, nullable=False)
    rate_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cap: Mapped[int] = mapped_column(BigInteger, nullable=False)


class PointsRedemption(Timestamped, Base):
    __tablename__ = "points_redemptions"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(100), nullable=False)
    pool_id: Mapped[str] = mapped_column(ForeignKey("points_pools.id"), index=True, nullable=False)
    session_id: Mapped[str | None] = mapped_column(String(40), index=True)
    charity_id: Mapped[str] = mapped_column(String(40), nullable=False)
    points: Mapped[int] = mapped_column(BigInteger, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
