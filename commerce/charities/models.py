"""Tables of charities and their campaigns."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import ID, Base, Timestamped


class Charity(Timestamped, Base):
    __tablename__ = "charities"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    admin_user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True, nullable=False)


class Campaign(Timestamped, Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("unit_cost > 0", name="unit_cost_positive"),
        CheckConstraint("goal_units > 0", name="goal_units_positive"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    charity_id: Mapped[str] = mapped_column(ForeignKey("charities.id"), index=True, nullable=False)
    title: Mapped[str] = mapped_column(String(120), nullable=False)
    unit_name: Mapped[str] = mapped_column(String(60), nullable=False)
    unit_cost: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    goal_units: Mapped[int] = mapped_column(Integer, nullable=False)
