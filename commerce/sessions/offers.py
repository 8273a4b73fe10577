"""What a buyer can buy right now, cached per process. Listings and deals never change once
created, and a session's status changes rarely, so each process keeps a session's offers in
memory for a second: a flash sale's hot path reads no table to decide sold-out, over-limit
or not-live.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import select

from commerce.catalog.models import Product
from commerce.deals.models import FlashDeal
from commerce.sessions.lifecycle import SessionStatus
from commerce.sessions.models import Listing, LiveSession
from core.clock import utcnow
from core.errors import not_found
from core.services import Services

TTL_S = 1.0


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Offer:
    listing_id: str
    inventory_id: str  # the listing's id, or the active deal's
    deal_id: str | None
    price: int
    stock: int
    max_per_buyer: int | None
    pledge_bps: int
    pledge_per_unit: int
    farmer_id: str
    product_id: str
    product_name: str
    weight_g: int  # one unit's shipping weight


@dataclass(slots=True)
class SessionOffers:
    session_id: str
    status: str
    host_id: str
    charity_id: str
    currency: str
    pinned_listing_id: str | None
    listings: dict[str, Offer] = field(default_factory=dict)
    deals: list[FlashDeal] = field(default_factory=list)
    loaded: float = 0.0

    def offer(self, listing_id: str, now: datetime) -> Offer | None:
        base = self.listings.get(listing_id)
        if base is None:
            return None
        for d in self.deals:
            if d.listing_id == listing_id and d.starts_at <= now < d.ends_at:
                return Offer(
                    listing_id=listing_id,
                    inventory_id=d.id,
                    deal_id=d.id,
                    price=d.price,
                    stock=d.stock,
                    max_per_buyer=d.max_per_buyer,
                    pledge_bps=base.pledge_bps,
                    pledge_per_unit=min(base.pledge_per_unit, d.price),
                    farmer_id=base.farmer_id,
                    product_id=base.product_id,
                    product_name=base.product_name,
                    weight_g=base.weight_g,
                )
        return base

    def stock_of(self, inventory_id: str) -> int | None:
        if inventory_id in self.listings:
            return self.listings[inventory_id].stock
        for d in self.deals:
            if d.id == inventory_id:
                return d.stock
        return None


_sessions: dict[str, SessionOffers] = {}


_listing_session: dict[str, str] = {}


async def load(services: Services, session_id: str) -> SessionOffers:
    async with services.db.reader() as s:
        live = await s.get(LiveSession, session_id)
        if live is None:
            raise not_found("session", session_id)
        rows = (
            await s.execute(
                select(Listing, Product)
                .join(Product, Product.id == Listing.product_id)
                .where(Listing.session_id == session_id)
            )
        ).all()
        deals = (
            (
                await s.execute(
                    select(FlashDeal).where(
                        FlashDeal.session_id == session_id, FlashDeal.ends_at > utcnow()
                    )
                )
            )
            .scalars()
            .all()
        )
    offers = SessionOffers(
        session_id=session_id,
        status=live.status,
        host_id=live.host_id,
        charity_id=live.charity_id,
        currency=live.currency,
        pinned_listing_id=live.pinned_listing_id,
        deals=list(deals),
        loaded=time.monotonic(),
    )
    for listing, product in rows:
        offers.listings[listing.id] = Offer(
            listing_id=listing.id,
            inventory_id=listing.id,
            deal_id=None,
            price=listing.price,
            stock=listing.stock,
            max_per_buyer=listing.max_per_buyer,
            pledge_bps=listing.pledge_bps,
            pledge_per_unit=listing.pledge_per_unit,
            farmer_id=product.farmer_id,
            product_id=product.id,
            product_name=product.name,
            weight_g=product.weight_g,
        )
        _listing_session[listing.id] = session_id
    _sessions[session_id] = offers
    return offers


_loading: dict[str, asyncio.Task[Any]] = {}


async def _once(key: str, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one load however many requests ask for it at the same moment (a stampede
    would otherwise send every one of them to the database when a cache entry is cold)."""
    task = _loading.get(key)
    if task is None:
        task = asyncio.create_task(make())
        _loading[key] = task
        task.add_done_callback(lambda _: _loading.pop(key, None))
    return cast(T, await asyncio.shield(task))


async def reload(services: Services, session_id: str) -> SessionOffers:
    return await _once(f"s:{session_id}", lambda: load(services, session_id))


async def _session_of(services: Services, listing_id: str) -> str | None:
    async with services.db.reader() as s:
        return await s.scalar(select(Listing.session_id).where(Listing.id == listing_id))


async def session_offers(services: Services, session_id: str) -> SessionOffers:
    cached = _sessions.get(session_id)
    # An ended session never reopens, so its status needs no refresh.
    if cached is not None and (
        cached.status == SessionStatus.ENDED or time.monotonic() - cached.loaded < TTL_S
    ):
        return cached
    return await reload(services, session_id)


async def offers_for_listing(services: Services, listing_id: str) -> SessionOffers:
    session_id = _listing_session.get(listing_id)
    if session_id is None:
        session_id = await _once(f"l:{listing_id}", lambda: _session_of(services, listing_id))
        if session_id is None:
            raise not_found("listing", listing_id)
        _listing_session[listing_id] = session_id
    offers = await session_offers(services, session_id)
    if listing_id not in offers.listings:
        offers = await reload(services, session_id)
    return offers


def forget(session_id: str) -> None:
    """Drop this process's cached offers (after a deal or a pin changed them)."""
    _sessions.pop(session_id, None)
