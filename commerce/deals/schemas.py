"""Request bodies and JSON of flash deals and pins."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from commerce.deals.models import FlashDeal
from core.clock import rfc3339
from core.fields import Amount, Id
from core.http import Body


class CreateDeal(Body):
    listing_id: Id
    price: Amount
    stock: Annotated[int, Field(gt=0, le=10_000_000)]
    countdown_s: Annotated[int, Field(ge=0, le=3600)]
    duration_s: Annotated[int, Field(gt=0, le=24 * 3600)]
    max_per_buyer: Annotated[int, Field(gt=0, le=10_000)] | None = None


class Pin(Body):
    listing_id: Id


def deal_json(d: FlashDeal) -> dict[str, Any]:
    return {
        "id": d.id,
        "session_id": d.session_id,
        "listing_id": d.listing_id,
        "price": d.price,
        "stock": d.stock,
        "starts_at": rfc3339(d.starts_at),
        "ends_at": rfc3339(d.ends_at),
        "max_per_buyer": d.max_per_buyer,
    }
