"""Request bodies and JSON of flash deals and pins."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from commerce.deals.models import FlashDeal
from commerce.sessions.schemas import ListingOut
from core.clock import rfc3339
from core.fields import Amount, Id
from core.http import Body
from core.shapes import TypedDict, closed


class CreateDeal(Body):
    listing_id: Id
    price: Amount
    stock: Annotated[int, Field(gt=0, le=10_000_000)]
    countdown_s: Annotated[int, Field(ge=0, le=3600)]
    duration_s: Annotated[int, Field(gt=0, le=24 * 3600)]
    max_per_buyer: Annotated[int, Field(gt=0, le=10_000)] | None = None


class Pin(Body):
    listing_id: Id


@closed
class DealOut(TypedDict):
    id: str
    session_id: str
    listing_id: str
    price: int
    stock: int
    starts_at: str | None
    ends_at: str | None
    max_per_buyer: int | None


@closed
class PinReply(TypedDict):
    session_id: str
    pinned_listing_id: str
    listing: ListingOut


def deal_json(d: FlashDeal) -> DealOut:
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
