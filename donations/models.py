"""Tables of the transparency log, donations, sponsor matches and disbursements."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Timestamped


class LogHead(Base):
    """The single row every append locks: the tree size and its peaks (the compact range).

    Appends serialise on this row's lock, held until the appending transaction commits, so
    indexes are gap-free and an entry commits atomically with the movement it records.
    """

    __tablename__ = "tlog_head"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("size >= 0", name="size_not_negative"),
        CheckConstraint("octet_length(peaks) % 32 = 0", name="peaks_are_hashes"),
    )

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    peaks: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class LogEntry(Timestamped, Base):
    """One money movement toward or from a charity, as canonical JSON, never changed."""

    __tablename__ = "tlog_entries"
    __table_args__ = (
        CheckConstraint("idx >= 0", name="idx_not_negative"),
        CheckConstraint("octet_length(leaf_hash) = 32", name="leaf_hash_size"),
    )

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # What the entry records (`donation:don_…`): unique, so one movement is logged once.
    ref: Mapped[str] = mapped_column(String(120), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    entry: Mapped[str] = mapped_column(Text, nullable=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class LogNode(Base):
    """The hash of a complete perfect subtree: leaves [idx << level, (idx + 1) << level)."""

    __tablename__ = "tlog_nodes"
    __table_args__ = (
        CheckConstraint("level BETWEEN 0 AND 63", name="level_range"),
        CheckConstraint("octet_length(hash) = 32", name="hash_size"),
    )

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class Checkpoint(Base):
    """A signed tree head. One per size, so two checkpoints can never disagree on a size,
    and each was checked consistent with the one before it when it was published."""

    __tablename__ = "tlog_checkpoints"
    __table_args__ = (
        CheckConstraint("size >= 0", name="size_not_negative"),
        CheckConstraint("octet_length(root_hash) = 32", name="root_hash_size"),
        CheckConstraint("octet_length(signature) = 68", name="signature_size"),
        Index("ix_tlog_checkpoints_published_at", "published_at"),
    )

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    origin: Mapped[str] = mapped_column(String(200), nullable=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    key_id: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # key id || Ed25519 signature over the C2SP checkpoint body.
    signature: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    published_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()"), nullable=False
    )
    previous_size: Mapped[int | None] = mapped_column(BigInteger)


ID = String(40)


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
            "payment_status IN ('pending','succeeded','failed','cancelled','refunded')",
            name="known_payment_status",
        ),
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
    # The payment lives on the donation (one each); its id has the `dpy_` prefix that
    # routes the provider's webhook here.
    payment_id: Mapped[str] = mapped_column(String(40), unique=True, nullable=False)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    provider_ref: Mapped[str | None] = mapped_column(String(120))
    payment_status: Mapped[str] = mapped_column(String(16), nullable=False)
    # Kept private: given to the donor in the receipt, it opens the log's commitment.
    donor_salt: Mapped[str] = mapped_column(String(64), nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Match(Timestamped, Base):
    """A sponsor's promise to add `ratio_bps`/10000 of each gift and pledge of a session."""

    __tablename__ = "matches"
    __table_args__ = (
        CheckConstraint("ratio_bps > 0 AND ratio_bps <= 100000", name="ratio_range"),
        CheckConstraint("cap > 0", name="cap_positive"),
        CheckConstraint("matched >= 0 AND matched <= cap", name="matched_within_cap"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True, nullable=False)
    sponsor_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    sponsor_name: Mapped[str] = mapped_column(String(120), nullable=False)
    ratio_bps: Mapped[int] = mapped_column(Integer, nullable=False)
    cap: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    matched: Mapped[int] = mapped_column(BigInteger, nullable=False)


class CharityFund(Base):
    """Money a charity received (a pledge, a gift, a match), oldest first: what
    disbursements draw from. `allocated` never exceeds `amount`; a reversal lowers both."""

    __tablename__ = "charity_funds"
    __table_args__ = (
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("allocated >= 0 AND allocated <= amount", name="allocated_within_amount"),
        Index("ix_charity_funds_open", "charity_id", "currency", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    charity_id: Mapped[str] = mapped_column(ForeignKey("charities.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    ref: Mapped[str] = mapped_column(String(120), unique=True, nullable=False)
    entry_index: Mapped[int] = mapped_column(BigInteger, nullable=False)
    session_id: Mapped[str | None] = mapped_column(String(40), index=True)
    # For a match: the movement it matched (`donation:don_…`, `pledge:ord_…`).
    source_ref: Mapped[str | None] = mapped_column(String(120), index=True)
    # The giver's salt for the log's commitment (gifts and pledges); private.
    donor_id: Mapped[str | None] = mapped_column(String(40))
    donor_salt: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    allocated: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Disbursement(Timestamped, Base):
    __tablename__ = "disbursements"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("evidence_sha256 ~ '^[0-9a-f]{64}$'", name="evidence_is_sha256"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    charity_id: Mapped[str] = mapped_column(ForeignKey("charities.id"), index=True, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    purpose: Mapped[str] = mapped_column(Text, nullable=False)
    evidence_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    evidence_url: Mapped[str | None] = mapped_column(String(500))
    units: Mapped[int | None] = mapped_column(Integer)
    entry_index: Mapped[int] = mapped_column(BigInteger, nullable=False)
    recorded_by: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)


class Allocation(Base):
    """How much of one received fund one disbursement spent."""

    __tablename__ = "disbursement_allocations"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    disbursement_id: Mapped[str] = mapped_column(ForeignKey("disbursements.id"), primary_key=True)
    fund_id: Mapped[int] = mapped_column(
        ForeignKey("charity_funds.id"), primary_key=True, index=True
    )
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SessionCharityTotal(Base):
    """A room's running charity sums, updated in the transaction of each movement, so a
    milestone is decided once, under this row's lock."""

    __tablename__ = "session_charity_totals"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), primary_key=True)
    pledged: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    donated: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    matched: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
