"""Tables of payouts: a farmer's payout account, and each payout made."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import ID, Base, Timestamped


class PayoutAccount(Timestamped, Base):
    """Where a farmer is paid: one bank account per farmer."""

    __tablename__ = "payout_accounts"

    farmer_id: Mapped[str] = mapped_column(ForeignKey("farmers.id"), primary_key=True)
    bank: Mapped[str] = mapped_column(String(20), nullable=False)
    account_number: Mapped[str] = mapped_column(String(30), nullable=False)
    holder_name: Mapped[str] = mapped_column(String(120), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class Payout(Timestamped, Base):
    """One transfer of a farmer's settled balance, in one run."""

    __tablename__ = "payouts"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending','submitted','completed','failed')", name="known_status"
        ),
        CheckConstraint("amount > 0", name="amount_positive"),
        # A run pays a farmer once per currency, however often it is started.
        UniqueConstraint("run_id", "farmer_id", "currency"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(60), index=True, nullable=False)
    farmer_id: Mapped[str] = mapped_column(ForeignKey("farmers.id"), index=True, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    provider: Mapped[str] = mapped_column(String(20), nullable=False)
    provider_ref: Mapped[str | None] = mapped_column(String(120))
    # The account as it was when paid (a later change does not rewrite history).
    bank: Mapped[str] = mapped_column(String(20), nullable=False)
    account_number: Mapped[str] = mapped_column(String(30), nullable=False)
    holder_name: Mapped[str] = mapped_column(String(120), nullable=False)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
