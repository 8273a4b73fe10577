"""Accounts: the one table every other package refers to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Timestamped
from core.shapes import TypedDict, closed


@closed
class PublicUser(TypedDict):
    id: str
    handle: str
    display_name: str


@closed
class UserOut(TypedDict):
    id: str
    handle: str
    display_name: str
    roles: list[str]


class User(Timestamped, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("cardinality(roles) > 0", name="has_role"),
        CheckConstraint(
            "roles <@ ARRAY['viewer','host','farmer','charity_admin','sponsor','admin']::text[]",
            name="known_roles",
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    handle: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(80), nullable=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    roles: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    # Tokens issued at or before this are revoked (logging out, an admin's revocation).
    tokens_valid_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def public(self) -> PublicUser:
        return {"id": self.id, "handle": self.handle, "display_name": self.display_name}

    def private(self) -> UserOut:
        return {**self.public(), "roles": sorted(self.roles)}
