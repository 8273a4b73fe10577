"""The table of viewers' gifts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import ID, Base, Timestamped


class Donation(Timestamped, Base):
    """A viewer's gift to a charity, paid through the payment provider like an order."""

    __tablename__ = "donations"
    __table_args__ = (
        UniqueConstraint("donor_id", "idempotency_key"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "visibility IN ('public','first_name','anonymous')", name="known_visibility"
        ),
        CheckConstraint("status IN ('pending','paid','failed','cancelled')", name="known_status"),
        CheckConstraint(
            "message_status IN ('none','pending','approved','hidden','read')",
            name="known_message_status",
        ),
        Index("ix_donations_session_id_status", "session_id", "status"),
        Index("ix_donations_charity_id_status", "charity_id", "status"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    donor_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    charity_id: Mapped[str] = mapped_column(ForeignKey("charities.id"), nullable=False)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id"))
    idempotency_key: Mapped[str] = mapped_column(String(100), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    message: Mapped[str | None] = mapped_column(String(280))
    message_status: Mapped[str] = mapped_column(String(16), nullable=False)
    visibility: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    # Its payment, through the same providers and lifecycle as an order's.
    payment_id: Mapped[str] = mapped_column(
        # Deferred: a gift is written first (its idempotency key decides whether it is new),
        # then its payment.
        ForeignKey("payments.id", deferrable=True, initially="DEFERRED"),
        unique=True,
        nullable=False,
    )
    # Kept private: given to the donor in the receipt, it opens the log's commitment.
    donor_salt: Mapped[str] = mapped_column(String(64), nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
