"""HTTP: charities and their campaigns."""

from __future__ import annotations

from sqlalchemy import select
from starlette.responses import Response

from commerce.charities.models import Campaign, Charity
from commerce.charities.schemas import CreateCampaign, CreateCharity, campaign_json, charity_json
from commerce.charities.service import campaigns_of, load_charity, require_charity_admin
from core.accounts import grant_role
from core.auth import Role
from core.http import ANYONE, LIMIT, Api, Ctx, json, roles
from core.ids import new_id

api = Api()


@api.post("/api/charities", roles(Role.ADMIN), body=CreateCharity, status=201)
async def create_charity(ctx: Ctx) -> Response:
    body = await ctx.body(CreateCharity)
    charity = Charity(id=new_id("chr"), **body.model_dump())
    async with ctx.services.db.transaction() as s:
        await grant_role(s, body.admin_user_id, Role.CHARITY_ADMIN)
        s.add(charity)
    ctx.services.identities.forget(body.admin_user_id)  # their new role, at once here
    return json(charity_json(charity, []), 201)


@api.get("/api/charities", ANYONE, query=(LIMIT,))
async def list_charities(ctx: Ctx) -> Response:
    limit = ctx.query_int("limit")
    async with ctx.services.db.reader() as s:
        rows = (await s.execute(select(Charity).order_by(Charity.id).limit(limit))).scalars().all()
    campaigns = await campaigns_of(ctx.services.db, [c.id for c in rows])
    return json({"charities": [charity_json(c, campaigns[c.id]) for c in rows]})


@api.get("/api/charities/{charity_id}", ANYONE)
async def get_charity(ctx: Ctx) -> Response:
    charity = await load_charity(ctx.services.db, ctx.path("charity_id"))
    campaigns = await campaigns_of(ctx.services.db, [charity.id])
    return json(charity_json(charity, campaigns[charity.id]))


@api.post(
    "/api/charities/{charity_id}/campaigns",
    roles(Role.CHARITY_ADMIN, Role.ADMIN),
    body=CreateCampaign,
    status=201,
)
async def create_campaign(ctx: Ctx) -> Response:
    charity = await load_charity(ctx.services.db, ctx.path("charity_id"))
    require_charity_admin(ctx.user, charity)
    body = await ctx.body(CreateCampaign)
    campaign = Campaign(id=new_id("cmp"), charity_id=charity.id, **body.model_dump())
    async with ctx.services.db.transaction() as s:
        s.add(campaign)
    return json(campaign_json(campaign), 201)
