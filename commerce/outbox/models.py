"""The table of the transactional outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class OutboxEvent(Base):
    """The events of one change, written in the same transaction; the relay sends them.
    `events` is a list of [topic, event] pairs, in order."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),
        Index("ix_outbox_held", "entry_of", postgresql_where=text("entry_of IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    events: Mapped[list[Any]] = mapped_column(JSONB, nullable=False)
    # The writing transaction's id (pg_current_xact_id), for telling whether a snapshot
    # already includes these events (see core.db.Snapshot).
    xid: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Held until this transparency-log entry has its index (see service.add).
    entry_of: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
