"""Reading sessions, and who may act for one."""

from __future__ import annotations

from typing import cast

from sqlalchemy import select

from commerce.catalog.models import Product
from commerce.charities.models import Campaign, Charity
from commerce.sessions.models import Listing, LiveSession
from commerce.sessions.schemas import SessionDetail, listing_json, session_json
from core.auth import Principal
from core.db import Database
from core.errors import forbidden, not_found


async def load_session(db: Database, session_id: str) -> LiveSession:
    async with db.reader() as s:
        live = await s.get(LiveSession, session_id)
    if live is None:
        raise not_found("session", session_id)
    return live


def require_host(principal: Principal, live: LiveSession) -> None:
    if not (principal.is_admin or live.host_id == principal.user_id):
        raise forbidden("only this session's host may do this")


async def session_detail(db: Database, live: LiveSession) -> SessionDetail:
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
    # A cast: mypy will not build a TypedDict from another's ** with optional keys left
    # out; the tests check this shape against every answer.
    out = cast(
        SessionDetail,
        {
            **session_json(live),
            "listings": [listing_json(listing, product) for listing, product in rows],
            "charity": {"id": charity.id, "name": charity.name} if charity else None,
        },
    )
    if campaign is not None:
        out["campaign"] = {
            "id": campaign.id,
            "title": campaign.title,
            "unit_name": campaign.unit_name,
            "unit_cost": campaign.unit_cost,
            "goal_units": campaign.goal_units,
        }
    return out
