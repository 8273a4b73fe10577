"""Tables of the catalog: farmers and their products."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import ID, Base, Timestamped


class Farmer(Timestamped, Base):
    __tablename__ = "farmers"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    region: Mapped[str] = mapped_column(String(120), nullable=False)


class Product(Timestamped, Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("unit_price > 0", name="unit_price_positive"),
        CheckConstraint("weight_g > 0", name="weight_positive"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    farmer_id: Mapped[str] = mapped_column(ForeignKey("farmers.id"), index=True, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    unit: Mapped[str] = mapped_column(String(40), nullable=False)
    unit_price: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(String(500))
    origin: Mapped[str | None] = mapped_column(String(120))
    # The shipping weight of one unit, packed (what a per-kilogram fee is charged on).
    weight_g: Mapped[int] = mapped_column(
        Integer, nullable=False, default=1000, server_default=text("1000")
    )


class ProductImage(Timestamped, Base):
    """A product's photo as we re-encoded it: kept in PostgreSQL beside the product, so every
    web process serves it without a shared disk, and small enough for that (at most
    `images.MAX_SIDE` px a side, a few hundred KB)."""

    __tablename__ = "product_images"

    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    content_type: Mapped[str] = mapped_column(String(40), nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
