"""Tables of the charity's books: what it received (funds), sponsor matches, disbursements and
their allocations, and each room's running charity sums.
"""

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
    Text,
    select,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column
from sqlalchemy.sql.expression import false

from core.db import ID, Base, Timestamped
from donations.transparency.models import LogEntry


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
    # Its entry's index in the log: read from the entry (one ref, unique in both tables),
    # as the sequencer writes it after this row commits; None until then. A change to the
    # fund (allocated, amount) does not change it: kept, not reloaded, after a flush.
    entry_index: Mapped[int | None] = column_property(
        select(LogEntry.idx).where(LogEntry.ref == ref).scalar_subquery(), expire_on_flush=False
    )
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
    # A pledge (and a match of one) waits until its order's produce is delivered and kept:
    # a failed delivery takes it back, so it cannot be spent before.
    held: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )


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
