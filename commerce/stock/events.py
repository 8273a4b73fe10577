"""Events of stock counters: what is left of a listing or a deal, and selling out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from core.events import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class Stock(Event):
    """Units left (folded into the pinned card and the deal, not listed to viewers)."""

    type: ClassVar[str] = "stock"
    listing_id: str
    remaining: int
    deal_id: str | None = None  # a flash deal's own counter, not the listing's


@dataclass(frozen=True, slots=True, kw_only=True)
class SoldOut(Event):
    type: ClassVar[str] = "sold_out"
    listing_id: str
    deal_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Release(Event):
    """Not for viewers: an order's hold to give back once the change that freed it (expiry,
    cancel, refund, a failed payment) has committed; the outbox relay does it."""

    type: ClassVar[str] = "release"
    session_id: str
    inventory_id: str  # the listing's counter, or its flash deal's
    listing_id: str
    order_id: str
