"""HTTP: sessions, their listings and their lifecycle."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from commerce.catalog.models import Product
from commerce.charities.models import Campaign, Charity
from commerce.outbox import service as outbox
from commerce.sessions import lifecycle, offers
from commerce.sessions.events import SessionMoved
from commerce.sessions.lifecycle import SESSION, SessionStatus
from commerce.sessions.models import Listing, LiveSession
from commerce.sessions.schemas import (
    CreateListing,
    CreateSession,
    ListingOut,
    SessionList,
    SessionOut,
    listing_json,
    session_json,
)
from commerce.sessions.service import load_session, require_host
from commerce.stock import service as inventory
from core.auth import Role
from core.clock import rfc3339, utcnow
from core.errors import bad_request, conflict, not_found
from core.http import ANYONE, LIMIT, Api, Ctx, Query, json, roles
from core.ids import new_id

log = logging.getLogger("panen.sessions")

api = Api()


@api.post(
    "/api/sessions",
    roles(Role.HOST, Role.ADMIN),
    body=CreateSession,
    status=201,
    response=SessionOut,
)
async def create_session(ctx: Ctx) -> Response:
    body = await ctx.body(CreateSession)
    async with ctx.services.db.transaction() as s:
        if await s.get(Charity, body.charity_id) is None:
            raise not_found("charity", body.charity_id)
        if body.campaign_id is not None:
            campaign = await s.get(Campaign, body.campaign_id)
            if campaign is None:
                raise not_found("campaign", body.campaign_id)
            if campaign.charity_id != body.charity_id:
                raise bad_request(
                    "campaign_mismatch", "the campaign is not this charity's", "campaign_id"
                )
            if campaign.currency != body.currency:
                raise bad_request(
                    "currency_mismatch", f"the campaign counts in {campaign.currency}", "currency"
                )
        live = LiveSession(
            id=new_id("ses"),
            host_id=ctx.user.user_id,
            status=SessionStatus.SCHEDULED,
            **body.model_dump(),
        )
        s.add(live)
    return json(session_json(live), 201)


@api.get(
    "/api/sessions",
    ANYONE,
    query=(Query("status", choices=SESSION.states), LIMIT),
    response=SessionList,
)
async def list_sessions(ctx: Ctx) -> Response:
    status = ctx.query("status")
    if status is not None and status not in SESSION.states:
        raise bad_request(
            "invalid_field", f"status must be one of {', '.join(SESSION.states)}", "status"
        )
    limit = ctx.query_int("limit")
    query = select(LiveSession).order_by(LiveSession.id.desc()).limit(limit)
    if status is not None:
        query = query.where(LiveSession.status == status)
    async with ctx.services.db.reader() as s:
        rows = (await s.execute(query)).scalars().all()
    return json({"sessions": [session_json(r) for r in rows]})


@api.post(
    "/api/sessions/{session_id}/listings",
    roles(Role.HOST, Role.ADMIN),
    body=CreateListing,
    status=201,
    response=ListingOut,
)
async def create_listing(ctx: Ctx) -> Response:
    live = await load_session(ctx.services.db, ctx.path("session_id"))
    require_host(ctx.user, live)
    body = await ctx.body(CreateListing)
    if body.pledge_bps and body.pledge_per_unit:
        raise bad_request(
            "invalid_field", "give pledge_bps or pledge_per_unit, not both", "pledge_per_unit"
        )
    if body.pledge_per_unit > body.price:
        raise bad_request(
            "invalid_field", "the pledge per unit cannot exceed the price", "pledge_per_unit"
        )
    if live.status == SessionStatus.ENDED:
        raise conflict("session_ended", "this session has ended")
    async with ctx.services.db.transaction() as s:
        product = await s.get(Product, body.product_id)
        if product is None:
            raise not_found("product", body.product_id)
        if product.currency != live.currency:
            raise bad_request(
                "currency_mismatch",
                f"the product is priced in {product.currency}, the session in {live.currency}",
                "product_id",
            )
        listing = Listing(id=new_id("lst"), session_id=live.id, **body.model_dump())
        s.add(listing)
        try:
            await s.flush()
        except IntegrityError:
            raise conflict(
                "already_listed",
                "this product is already listed in this session",
                field="product_id",
            ) from None
    return json(listing_json(listing, product), 201)


async def _transition(ctx: Ctx, to: SessionStatus) -> Response:
    session_id = ctx.path("session_id")
    async with ctx.services.db.transaction() as s:
        live = await s.get(LiveSession, session_id, with_for_update=True)
        if live is None:
            raise not_found("session", session_id)
        require_host(ctx.user, live)
        now = utcnow()
        if lifecycle.move(live, to, now):  # every viewer's room hears it (a repeat: nothing)
            moved = SessionMoved(status=live.status, at=rfc3339(now))
            await outbox.add(s, [(f"session:{session_id}", moved)])
    await outbox.deliver(ctx.services)
    if to is SessionStatus.ENDED:
        # Before answering, where every reservation looks: no process takes another order.
        # (Redis away: no process can reserve anyway, and their caches expire in a second.)
        try:
            await inventory.session_ended(ctx.services, session_id)
        except (RedisError, OSError):
            log.warning("session %s ended; its counters were not told", session_id)
        offers.forget(session_id)
    return json(session_json(live))


@api.post("/api/sessions/{session_id}/start", roles(Role.HOST, Role.ADMIN), response=SessionOut)
async def start_session(ctx: Ctx) -> Response:
    return await _transition(ctx, SessionStatus.LIVE)


@api.post("/api/sessions/{session_id}/end", roles(Role.HOST, Role.ADMIN), response=SessionOut)
async def end_session(ctx: Ctx) -> Response:
    return await _transition(ctx, SessionStatus.ENDED)
