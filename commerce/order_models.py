"""Tables of the money path: orders, payments, flash deals, the ledger, the outbox.

The ledger tables are append-only: the migration adds triggers that refuse UPDATE and
DELETE on them, and a deferred constraint trigger that refuses a transaction whose
postings do not sum to zero.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Timestamped

ID = String(40)

ORDER_STATUSES = ("reserved", "paid", "settled", "expired", "cancelled", "refunded")
PAYMENT_STATUSES = ("pending", "succeeded", "failed", "cancelled", "refunded")


class FlashDeal(Timestamped, Base):
    """A time-boxed allotment of a listing at its own price, with its own stock counter."""

    __tablename__ = "flash_deals"
    __table_args__ = (
        CheckConstraint("price > 0", name="price_positive"),
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("max_per_buyer IS NULL OR max_per_buyer > 0", name="max_per_buyer_pos"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True, nullable=False)
    listing_id: Mapped[str] = mapped_column(ForeignKey("listings.id"), index=True, nullable=False)
    price: Mapped[int] = mapped_column(BigInteger, nullable=False)
    stock: Mapped[int] = mapped_column(Integer, nullable=False)
    max_per_buyer: Mapped[int | None] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class InventoryGeneration(Base):
    """Bumped each time a stock counter is rebuilt from the database.

    An order row is only written under the generation its Redis reservation was made in
    (checked with a key-share lock on this row), so a reservation made against a counter
    that has since been wiped and rebuilt can never land in the database uncounted.
    """

    __tablename__ = "inventory_generations"

    inventory_id: Mapped[str] = mapped_column(ID, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, nullable=False)


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
            "status IN ('reserved','paid','settled','expired','cancelled','refunded')",
            name="known_status",
        ),
        Index("ix_orders_status_expires_at", "status", "expires_at"),
        Index("ix_orders_inventory_id_status", "inventory_id", "status"),
        Index("ix_orders_session_id_status", "session_id", "status"),
        Index("ix_orders_farmer_id_status", "farmer_id", "status"),
        Index("ix_orders_buyer_id_id", "buyer_id", "id"),
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
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
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


class Payment(Timestamped, Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending','succeeded','failed','cancelled','refunded')",
            name="known_status",
        ),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), unique=True, nullable=False)
    payer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    provider_ref: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
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


class LedgerAccount(Timestamped, Base):
    __tablename__ = "ledger_accounts"

    code: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    owner_id: Mapped[str | None] = mapped_column(ID)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)


class LedgerTransaction(Timestamped, Base):
    __tablename__ = "ledger_transactions"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    # What caused it ("sale:ord_…", "refund:ord_…"): unique, so no cause posts twice.
    reference: Mapped[str] = mapped_column(String(160), unique=True, nullable=False)
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)


class LedgerPosting(Base):
    __tablename__ = "ledger_postings"
    __table_args__ = (CheckConstraint("amount <> 0", name="amount_not_zero"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(
        ForeignKey("ledger_transactions.id"), index=True, nullable=False
    )
    account_code: Mapped[str] = mapped_column(
        ForeignKey("ledger_accounts.code"), index=True, nullable=False
    )
    # Signed: credits to the account are positive, debits negative; a transaction sums to 0.
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)


class OutboxEvent(Base):
    """The events of one change, written in the same transaction; the relay sends them.
    `events` is a list of [topic, event] pairs, in order."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    events: Mapped[list[Any]] = mapped_column(JSONB, nullable=False)
    # The writing transaction's id (pg_current_xact_id), for telling whether a snapshot
    # already includes these events (see core.db.Snapshot).
    xid: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
