"""Tables of payments and the provider events seen."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    String,
    Text,
    false,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import ID, Base, Timestamped


class Payment(Timestamped, Base):
    """Money asked of a payer through a provider, for one order or one gift."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending','succeeded','failed','cancelled','refunding','refunded')",
            name="known_status",
        ),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("purpose IN ('order','gift','top_up')", name="known_purpose"),
        CheckConstraint("(purpose = 'order') = (order_id IS NOT NULL)", name="order_has_its_id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    # What it pays for: an order (its id here), or a gift or a sponsor's top-up (whose row
    # names this payment).
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), unique=True)
    payer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    provider_ref: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    # How the payer chose to pay (qris, bca_va …), then how they did, as the provider
    # names it; decides whether a refund can go back through the provider.
    method: Mapped[str | None] = mapped_column(String(32))
    # The gateway's page for this payment, once the payer chose a method.
    checkout_url: Mapped[str | None] = mapped_column(Text)
    checkout_token: Mapped[str | None] = mapped_column(String(120))
    checkout_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Refunding, and the provider cannot return it (a bank transfer): an operator does,
    # then marks it refunded.
    refund_by_hand: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class WebhookEvent(Base):
    """Every provider event id seen once: a replayed webhook finds its id here."""

    __tablename__ = "webhook_events"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    payment_id: Mapped[str | None] = mapped_column(ID)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
