"""Tables of the double-entry ledger. Append-only: the migration adds triggers that refuse
UPDATE and DELETE, and a deferred constraint trigger that refuses a transaction whose
postings do not sum to zero.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import ID, Base, Timestamped


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
