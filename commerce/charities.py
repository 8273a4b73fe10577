"""Charities and their campaigns ("Love Package": unit cost, goal in units)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from sqlalchemy import select
from starlette.responses import Response

from commerce.models import Campaign, Charity
from core.accounts import grant_role
from core.auth import Principal, Role
from core.clock import rfc3339
from core.db import Database
from core.errors import forbidden, not_found
from core.fields import Amount, Currency, Id, LongText, Name
from core.http import ANYONE, Api, Body, Ctx, json, roles
from core.ids import new_id


class CreateCharity(Body):
    name: Name
    description: LongText
    admin_user_id: Id


class CreateCampaign(Body):
    title: Name
    unit_name: Name
    unit_cost: Amount
    goal_units: Annotated[int, Field(gt=0, le=100_000_000)]
    currency: Currency = "IDR"


def campaign_json(c: Campaign) -> dict[str, object]:
    return {
        "id": c.id,
        "charity_id": c.charity_id,
        "title": c.title,
        "unit_name": c.unit_name,
        "unit_cost": c.unit_cost,
        "currency": c.currency,
        "goal_units": c.goal_units,
        "created_at": rfc3339(c.created_at),
    }


def charity_json(c: Charity, campaigns: list[Campaign]) -> dict[str, object]:
    return {
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "admin_user_id": c.admin_user_id,
        "created_at": rfc3339(c.created_at),
        "campaigns": [campaign_json(k) for k in campaigns],
    }


async def load_charity(db: Database, charity_id: str) -> Charity:
    async with db.reader() as s:
        charity = await s.get(Charity, charity_id)
    if charity is None:
        raise not_found("charity", charity_id)
    return charity


def require_charity_admin(principal: Principal, charity: Charity) -> None:
    if not (principal.is_admin or charity.admin_user_id == principal.user_id):
        raise forbidden("only this charity's admin may do this")


async def campaigns_of(db: Database, charity_ids: list[str]) -> dict[str, list[Campaign]]:
    out: dict[str, list[Campaign]] = {c: [] for c in charity_ids}
    if not charity_ids:
        return out
    async with db.reader() as s:
        rows = await s.execute(
            select(Campaign).where(Campaign.charity_id.in_(charity_ids)).order_by(Campaign.id)
        )
    for campaign in rows.scalars():
        out[campaign.charity_id].append(campaign)
    return out


api = Api()


@api.post("/api/charities", roles(Role.ADMIN))
async def create_charity(ctx: Ctx) -> Response:
    body = await ctx.body(CreateCharity)
    charity = Charity(id=new_id("chr"), **body.model_dump())
    async with ctx.services.db.transaction() as s:
        await grant_role(s, body.admin_user_id, Role.CHARITY_ADMIN)
        s.add(charity)
    return json(charity_json(charity, []), 201)


@api.get("/api/charities", ANYONE)
async def list_charities(ctx: Ctx) -> Response:
    limit = ctx.query_int("limit", 50, 1, 200)
    async with ctx.services.db.reader() as s:
        rows = (await s.execute(select(Charity).order_by(Charity.id).limit(limit))).scalars().all()
    campaigns = await campaigns_of(ctx.services.db, [c.id for c in rows])
    return json({"charities": [charity_json(c, campaigns[c.id]) for c in rows]})


@api.get("/api/charities/{charity_id}", ANYONE)
async def get_charity(ctx: Ctx) -> Response:
    charity = await load_charity(ctx.services.db, ctx.path("charity_id"))
    campaigns = await campaigns_of(ctx.services.db, [charity.id])
    return json(charity_json(charity, campaigns[charity.id]))


@api.post("/api/charities/{charity_id}/campaigns", roles(Role.CHARITY_ADMIN, Role.ADMIN))
async def create_campaign(ctx: Ctx) -> Response:
    charity = await load_charity(ctx.services.db, ctx.path("charity_id"))
    require_charity_admin(ctx.user, charity)
    body = await ctx.body(CreateCampaign)
    campaign = Campaign(id=new_id("cmp"), charity_id=charity.id, **body.model_dump())
    async with ctx.services.db.transaction() as s:
        s.add(campaign)
    return json(campaign_json(campaign), 201)
