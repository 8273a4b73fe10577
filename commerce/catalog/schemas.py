"""Request bodies and JSON of farmers and products."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from commerce.catalog.models import Farmer, Product
from core.clock import rfc3339
from core.fields import Amount, Currency, Id, LongText, Name, ShortText, Url
from core.http import Body
from core.shapes import TypedDict, closed


class CreateFarmer(Body):
    user_id: Id
    name: Name
    region: Name


class CreateProduct(Body):
    farmer_id: Id
    name: Name
    unit: ShortText
    unit_price: Amount
    currency: Currency
    description: LongText | None = None
    image_url: Url | None = None
    origin: Name | None = None
    weight_g: Annotated[int, Field(gt=0, le=1_000_000)] = 1000  # one unit, packed


@closed
class FarmerOut(TypedDict):
    id: str
    user_id: str
    name: str
    region: str
    created_at: str | None


@closed
class ProductOut(TypedDict):
    id: str
    farmer_id: str
    name: str
    unit: str
    unit_price: int
    currency: str
    description: str | None
    image_url: str | None
    origin: str | None
    weight_g: int
    created_at: str | None


@closed
class ProductPage(TypedDict):
    products: list[ProductOut]
    next_before: str | None  # pass as `before` for the next page; null on the last


def farmer_json(f: Farmer) -> FarmerOut:
    return {
        "id": f.id,
        "user_id": f.user_id,
        "name": f.name,
        "region": f.region,
        "created_at": rfc3339(f.created_at),
    }


def product_json(p: Product) -> ProductOut:
    return {
        "id": p.id,
        "farmer_id": p.farmer_id,
        "name": p.name,
        "unit": p.unit,
        "unit_price": p.unit_price,
        "currency": p.currency,
        "description": p.description,
        "image_url": p.image_url,
        "origin": p.origin,
        "weight_g": p.weight_g,
        "created_at": rfc3339(p.created_at),
    }
