"""Live sales sessions: their shape (charity, campaign, listings) and their lifecycle."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from commerce.models import Campaign, Charity, Listing, LiveSession, Product
from core.auth import Principal, Role
from core.clock import rfc3339, utcnow
from core.db import Database
from core.errors import bad_request, conflict, forbidden, not_found
from core.fields import Amount, Bps, Currency, Id, Title, Url
from core.http import ANYONE, Api, Body, Ctx, json, roles
from core.ids import new_id

STATUSES = ("scheduled", "live", "ended")


class CreateSession(Body):
    title: Title
    charity_id: Id
    campaign_id: Id | None = None
    stream_url: Url | None = None
    scheduled_at: AwareDatetime | None = None
    currency: Currency


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
        "created_at": rfc3339(s.created_at),
    }


async def load_session(db: Database, session_id: str) -> LiveSession:
    async with db.reader() as s:
        live = await s.get(LiveSession, session_id)
    if live is None:
        raise not_found("session", session_id)
    return live


def require_host(principal: Principal, live: LiveSession) -> None:
    if not (principal.is_admin or live.host_id == principal.user_id):
        raise forbidden("only this session's host may do this")


async def session_detail(db: Database, live: LiveSession) -> dict[str, Any]:
    async with db.reader() as s:
        rows = (
            await s.execute(
                select(Listing, Product)
                .join(Product, Product.id == Listing.product_id)
                .where(Listing.session_id == live.id)
                .order_by(Listing.id)
            )
        ).all()
        charity = await s.get(Charity, live.charity_id)
        campaign = await s.get(Campaign, live.campaign_id) if live.campaign_id else None
    out = session_json(live)
    out["listings"] = [listing_json(listing, product) for listing, product in rows]
    out["charity"] = {"id": charity.id, "name": charity.name} if charity else None
    if campaign is not None:
        out["campaign"] = {
            "id": campaign.id,
            "title": campaign.title,
            "unit_name": campaign.unit_name,
            "unit_cost": campaign.unit_cost,
            "goal_units": campaign.goal_units,
        }
    return out


api = Api()


@api.post("/api/sessions", roles(Role.HOST, Role.ADMIN))
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
            id=new_id("ses"), host_id=ctx.user.user_id, status="scheduled", **body.model_dump()
        )
        s.add(live)
    return json(session_json(live), 201)


@api.get("/api/sessions", ANYONE)
async def list_sessions(ctx: Ctx) -> Response:
    status = ctx.query("status")
    if status is not None and status not in STATUSES:
        raise bad_request("invalid_field", f"status must be one of {', '.join(STATUSES)}", "status")
    limit = ctx.query_int("limit", 50, 1, 200)
    query = select(LiveSession).order_by(LiveSession.id.desc()).limit(limit)
    if status is not None:
        query = query.where(LiveSession.status == status)
    async with ctx.services.db.reader() as s:
        rows = (await s.execute(query)).scalars().all()
    return json({"sessions": [session_json(r) for r in rows]})


# GET /api/sessions/{id} is served by live.sessions_api: its totals snapshot is the room's.


@api.post("/api/sessions/{session_id}/listings", roles(Role.HOST, Role.ADMIN))
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
    if live.status == "ended":
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


async def _transition(ctx: Ctx, allowed_from: str, to: str) -> Response:
    session_id = ctx.path("session_id")
    async with ctx.services.db.transaction() as s:
        live = await s.get(LiveSession, session_id, with_for_update=True)
        if live is None:
            raise not_found("session", session_id)
        require_host(ctx.user, live)
        if live.status != to:  # repeating a transition that already happened is harmless
            if live.status != allowed_from:
                raise conflict(
                    "invalid_transition",
                    f"a {live.status} session cannot become {to}",
                    status=live.status,
                )
            live.status = to
            now: datetime = utcnow()
            if to == "live":
                live.started_at = now
            else:
                live.ended_at = now
    return json(session_json(live))


@api.post("/api/sessions/{session_id}/start", roles(Role.HOST, Role.ADMIN))
async def start_session(ctx: Ctx) -> Response:
    return await _transition(ctx, "scheduled", "live")


@api.post("/api/sessions/{session_id}/end", roles(Role.HOST, Role.ADMIN))
async def end_session(ctx: Ctx) -> Response:
    return await _transition(ctx, "live", "ended")
