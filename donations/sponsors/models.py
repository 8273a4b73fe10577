"""The table of sponsors' top-ups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import ID, Base, Timestamped


class TopUp(Timestamped, Base):
    """Money a sponsor pays in, through a payment provider, to fund their commitments."""

    __tablename__ = "sponsor_top_ups"
    __table_args__ = (
        UniqueConstraint("sponsor_id", "idempotency_key"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN ('pending','paid','failed')", name="known_status"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    sponsor_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True, nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(100), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    payment_id: Mapped[str] = mapped_column(
        # Deferred, as a gift's: the top-up is written first (its key decides whether it is
        # new), then its payment.
        ForeignKey("payments.id", deferrable=True, initially="DEFERRED"),
        unique=True,
        nullable=False,
    )
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
