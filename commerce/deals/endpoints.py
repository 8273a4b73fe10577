"""HTTP: flash deals and the pinned product, what the host puts in front of every viewer."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from starlette.responses import Response

from commerce.catalog.models import Product
from commerce.deals.events import DealAnnounced, Pinned
from commerce.deals.models import FlashDeal
from commerce.deals.schemas import CreateDeal, DealOut, Pin, PinReply, deal_json
from commerce.outbox import service as outbox
from commerce.sessions import offers
from commerce.sessions.models import Listing
from commerce.sessions.schemas import listing_json
from commerce.sessions.service import lock_for_host
from commerce.stock import service as inventory
from core.auth import Role
from core.clock import utcnow
from core.errors import bad_request, conflict
from core.http import Api, Ctx, json, roles
from core.ids import new_id
from core.redis import UNREACHABLE

log = logging.getLogger("panen.deals")

api = Api()


@api.post(
    "/api/sessions/{session_id}/flash-deals",
    roles(Role.HOST, Role.ADMIN),
    body=CreateDeal,
    status=201,
    response=DealOut,
)
async def create_deal(ctx: Ctx) -> Response:
    session_id = ctx.path("session_id")
    body = await ctx.body(CreateDeal)
    async with ctx.services.db.transaction() as s:
        await lock_for_host(s, ctx.user, session_id)  # a deal at a time per session
        listing = await s.get(Listing, body.listing_id)
        if listing is None or listing.session_id != session_id:
            raise bad_request("unknown_listing", "no such listing in this session", "listing_id")
        if body.price >= listing.price:
            # A flash deal is shown as a discount: a price at or above the listing's is not.
            raise bad_request(
                "invalid_field",
                f"price: a deal's price must be below the listing's ({listing.price})",
                "price",
            )
        starts = utcnow() + timedelta(seconds=body.countdown_s)
        ends = starts + timedelta(seconds=body.duration_s)
        overlapping = await s.scalar(
            select(FlashDeal.id).where(
                FlashDeal.listing_id == listing.id,
                FlashDeal.starts_at < ends,
                FlashDeal.ends_at > starts,
            )
        )
        if overlapping is not None:
            raise conflict(
                "deal_overlaps", "this listing already has a deal in that time", deal_id=overlapping
            )
        deal = FlashDeal(
            id=new_id("dea"),
            session_id=session_id,
            listing_id=listing.id,
            price=body.price,
            stock=body.stock,
            max_per_buyer=body.max_per_buyer,
            starts_at=starts,
            ends_at=ends,
        )
        s.add(deal)
        out = deal_json(deal)
        announced = DealAnnounced(deal={k: v for k, v in out.items() if k != "session_id"})
        await outbox.add(s, [(f"session:{session_id}", announced)])
    offers.forget(session_id)
    # Build the deal's counter now, so the first buyer at the countdown's end finds it (if
    # Redis is away, the first order or the warm-up job builds it).
    try:
        await inventory.rebuild(
            ctx.services, session_id=session_id, inventory_id=deal.id, stock=deal.stock
        )
    except UNREACHABLE:
        log.warning("the deal's counter will be built later", exc_info=True)
    await outbox.deliver(ctx.services)
    return json(out, 201)


@api.post(
    "/api/sessions/{session_id}/pin", roles(Role.HOST, Role.ADMIN), body=Pin, response=PinReply
)
async def pin(ctx: Ctx) -> Response:
    session_id = ctx.path("session_id")
    body = await ctx.body(Pin)
    async with ctx.services.db.reader() as s:
        row = (
            await s.execute(
                select(Listing, Product)
                .join(Product, Product.id == Listing.product_id)
                .where(Listing.id == body.listing_id)
            )
        ).first()
    if row is None or row[0].session_id != session_id:
        raise bad_request("unknown_listing", "no such listing in this session", "listing_id")
    listing, product = row
    # The card shows the units left: read (or rebuilt) before anything changes, so that a
    # Redis away answers 503 with nothing done.
    left = await inventory.remaining(ctx.services, session_id, listing.id)
    if left is None:
        await inventory.rebuild(
            ctx.services, session_id=session_id, inventory_id=listing.id, stock=listing.stock
        )
        left = await inventory.remaining(ctx.services, session_id, listing.id)
    out = {**listing_json(listing, product), "remaining": left}
    async with ctx.services.db.transaction() as s:
        live = await lock_for_host(s, ctx.user, session_id)
        live.pinned_listing_id = listing.id
        await outbox.add(s, [(f"session:{session_id}", Pinned(listing=out))])
    offers.forget(session_id)
    await outbox.deliver(ctx.services)
    return json({"session_id": session_id, "pinned_listing_id": listing.id, "listing": out})
