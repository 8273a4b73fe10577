"""Tables of the transparency log: its head, entries, stored subtrees and signed checkpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Timestamped


class LogHead(Base):
    """The single row every append locks: the tree size and its peaks (the compact range).

    Appends serialise on this row's lock, held until the appending transaction (the
    sequencer's, or a disbursement's) commits, so indexes are gap-free.
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


class QueuedEntry(Timestamped, Base):
    """An entry its money transaction committed, waiting for the sequencer to give it an
    index (`log.integrate`). Deleted in the transaction that writes it into the log."""

    __tablename__ = "tlog_queue"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(120), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    # The entry's fields, but for those that name another entry's index: field -> its ref.
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    names: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False)


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
