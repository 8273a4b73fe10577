"""Request bodies and JSON of sessions and listings."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, Field

from commerce.catalog.models import Product
from commerce.sessions.models import Listing, LiveSession
from core.clock import rfc3339
from core.fields import Amount, Bps, Currency, Id, Title, Url
from core.http import Body


class CreateSession(Body):
    title: Title
    charity_id: Id
    campaign_id: Id | None = None
    stream_url: Url | None = None
    scheduled_at: AwareDatetime | None = None
    currency: Currency
    moderate_messages: bool = False


class CreateListing(Body):
    product_id: Id
    price: Amount
    stock: Annotated[int, Field(ge=0, le=10_000_000)]
    pledge_bps: Bps = 0
    pledge_per_unit: Annotated[int, Field(ge=0)] = 0
    max_per_buyer: Annotated[int, Field(gt=0, le=10_000)] | None = None


def listing_json(listing: Listing, product: Product | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": listing.id,
        "session_id": listing.session_id,
        "product_id": listing.product_id,
        "price": listing.price,
        "stock": listing.stock,
        "pledge_bps": listing.pledge_bps,
        "pledge_per_unit": listing.pledge_per_unit,
        "max_per_buyer": listing.max_per_buyer,
    }
    if product is not None:
        out["product"] = {
            "name": product.name,
            "unit": product.unit,
            "farmer_id": product.farmer_id,
            "image_url": product.image_url,
            "origin": product.origin,
        }
    return out


def session_json(s: LiveSession) -> dict[str, Any]:
    return {
        "id": s.id,
        "host_id": s.host_id,
        "title": s.title,
        "charity_id": s.charity_id,
        "campaign_id": s.campaign_id,
        "stream_url": s.stream_url,
        "scheduled_at": rfc3339(s.scheduled_at),
        "currency": s.currency,
        "status": s.status,
        "started_at": rfc3339(s.started_at),
        "ended_at": rfc3339(s.ended_at),
        "pinned_listing_id": s.pinned_listing_id,
        "moderate_messages": s.moderate_messages,
        "created_at": rfc3339(s.created_at),
    }
