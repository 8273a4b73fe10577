"""HTTP: making charities and their campaigns (reading them, with their totals, is
`donations.charity.endpoints`: the totals come from the ledger, a layer above)."""

from __future__ import annotations

from starlette.responses import Response

from commerce.charities.models import Campaign, Charity
from commerce.charities.schemas import (
    CampaignOut,
    CharityOut,
    CreateCampaign,
    CreateCharity,
    campaign_json,
    charity_json,
)
from commerce.charities.service import load_charity, require_charity_admin
from core.accounts import grant_role
from core.auth import Role
from core.http import Api, Ctx, json, roles
from core.ids import new_id

api = Api()


@api.post("/api/charities", roles(Role.ADMIN), body=CreateCharity, status=201, response=CharityOut)
async def create_charity(ctx: Ctx) -> Response:
    body = await ctx.body(CreateCharity)
    charity = Charity(id=new_id("chr"), **body.model_dump())
    async with ctx.services.db.transaction() as s:
        await grant_role(s, body.admin_user_id, Role.CHARITY_ADMIN)
        s.add(charity)
    ctx.services.identities.forget(body.admin_user_id)  # their new role, at once here
    return json(charity_json(charity, []), 201)


@api.post(
    "/api/charities/{charity_id}/campaigns",
    roles(Role.CHARITY_ADMIN, Role.ADMIN),
    body=CreateCampaign,
    status=201,
    response=CampaignOut,
)
async def create_campaign(ctx: Ctx) -> Response:
    charity = await load_charity(ctx.services.db, ctx.path("charity_id"))
    require_charity_admin(ctx.user, charity)
    body = await ctx.body(CreateCampaign)
    campaign = Campaign(id=new_id("cmp"), charity_id=charity.id, **body.model_dump())
    async with ctx.services.db.transaction() as s:
        s.add(campaign)
    return json(campaign_json(campaign), 201)
