"""HTTP: sponsor matches, disbursements, reports and pledge receipts."""

from __future__ import annotations

from sqlalchemy import select
from starlette.responses import Response

from commerce.charities.models import Charity
from commerce.charities.schemas import charity_json
from commerce.charities.service import campaigns_of, load_charity, require_charity_admin
from commerce.orders.models import Order
from commerce.sessions.lifecycle import SessionStatus
from commerce.sessions.service import load_session
from core.auth import Role
from core.errors import conflict, not_found
from core.http import ANYONE, LIMIT, LOGGED_IN, Api, Ctx, json, roles
from core.ids import new_id
from donations.charity import sequencer
from donations.charity.campaigns import CampaignPage, campaign_page
from donations.charity.disbursements import (
    CreateDisbursement,
    allocations_of,
    disburse,
    disbursement_json,
)
from donations.charity.models import Disbursement, Match
from donations.charity.receipts import build, fund_of
from donations.charity.reports import charity_report, charity_totals, session_report
from donations.charity.schemas import (
    CharityList,
    CharityPublic,
    CharityReport,
    CreateMatch,
    DisbursementList,
    DisbursementOut,
    MatchList,
    MatchOut,
    PledgeReceipt,
    SessionReport,
    match_json,
)

api = Api()


@api.get("/api/charities", ANYONE, query=(LIMIT,), response=CharityList)
async def list_charities(ctx: Ctx) -> Response:
    """Charities with their campaigns and public totals (received, matched, disbursed)."""
    limit = ctx.query_int("limit")
    async with ctx.services.db.lagging() as s:
        rows = (await s.execute(select(Charity).order_by(Charity.id).limit(limit))).scalars().all()
    ids = [c.id for c in rows]
    campaigns = await campaigns_of(ctx.services.db, ids)
    totals = await charity_totals(ctx.services.db, ids)
    return json(
        {"charities": [{**charity_json(c, campaigns[c.id]), "totals": totals[c.id]} for c in rows]}
    )


@api.get("/api/charities/{charity_id}", ANYONE, response=CharityPublic)
async def get_charity(ctx: Ctx) -> Response:
    """A charity with its campaigns and public totals by currency."""
    charity = await load_charity(ctx.services.db, ctx.path("charity_id"))
    campaigns = await campaigns_of(ctx.services.db, [charity.id])
    totals = await charity_totals(ctx.services.db, [charity.id])
    return json({**charity_json(charity, campaigns[charity.id]), "totals": totals[charity.id]})


@api.post(
    "/api/sessions/{session_id}/matches",
    roles(Role.SPONSOR, Role.ADMIN),
    body=CreateMatch,
    status=201,
    response=MatchOut,
)
async def create_match(ctx: Ctx) -> Response:
    live = await load_session(ctx.services.db, ctx.path("session_id"))
    body = await ctx.body(CreateMatch)
    if live.status == SessionStatus.ENDED:
        raise conflict("session_ended", "the session has ended", status=live.status)
    match = Match(
        id=new_id("mch"),
        session_id=live.id,
        sponsor_id=ctx.user.user_id,
        sponsor_name=body.sponsor_name,
        ratio_bps=body.ratio_bps,
        cap=body.cap,
        currency=live.currency,
        matched=0,
    )
    async with ctx.services.db.transaction() as s:
        s.add(match)
        await s.flush()
        await s.refresh(match)
    return json(match_json(match), 201)


@api.get("/api/sessions/{session_id}/matches", ANYONE, response=MatchList)
async def list_matches(ctx: Ctx) -> Response:
    live = await load_session(ctx.services.db, ctx.path("session_id"))
    async with ctx.services.db.reader() as s:
        rows = (
            await s.execute(
                select(Match).where(Match.session_id == live.id).order_by(Match.created_at)
            )
        ).scalars()
        return json({"matches": [match_json(m) for m in rows]})


@api.post(
    "/api/charities/{charity_id}/disbursements",
    roles(Role.CHARITY_ADMIN, Role.ADMIN),
    body=CreateDisbursement,
    status=201,
    response=DisbursementOut,
)
async def create_disbursement(ctx: Ctx) -> Response:
    charity = await load_charity(ctx.services.db, ctx.path("charity_id"))
    require_charity_admin(ctx.user, charity)
    body = await ctx.body(CreateDisbursement)
    # Only money whose entry is in the log can be named by a disbursement's allocations.
    await sequencer.catch_up(ctx.services)
    async with ctx.services.db.transaction() as s:
        d = await disburse(s, charity.id, body, ctx.user.user_id)
        allocations = await allocations_of(s, [d.id])
    return json(disbursement_json(d, allocations[d.id]), 201)


@api.get(
    "/api/charities/{charity_id}/disbursements",
    ANYONE,
    query=(LIMIT,),
    response=DisbursementList,
)
async def list_disbursements(ctx: Ctx) -> Response:
    charity = await load_charity(ctx.services.db, ctx.path("charity_id"))
    limit = ctx.query_int("limit")
    async with ctx.services.db.lagging() as s:
        rows = list(
            (
                await s.execute(
                    select(Disbursement)
                    .where(Disbursement.charity_id == charity.id)
                    .order_by(Disbursement.created_at.desc(), Disbursement.id.desc())
                    .limit(limit)
                )
            ).scalars()
        )
        allocations = await allocations_of(s, [d.id for d in rows])
    return json({"disbursements": [disbursement_json(d, allocations[d.id]) for d in rows]})


@api.get("/api/campaigns/{campaign_id}", ANYONE, response=CampaignPage)
async def get_campaign(ctx: Ctx) -> Response:
    """A campaign's progress in units across its sessions, its latest gifts and the
    charity's latest disbursements (a page to share)."""
    async with ctx.services.db.lagging() as s:
        return json(await campaign_page(s, ctx.path("campaign_id")))


@api.get("/api/charities/{charity_id}/report", ANYONE, response=CharityReport)
async def get_charity_report(ctx: Ctx) -> Response:
    charity = await load_charity(ctx.services.db, ctx.path("charity_id"))
    return json(await charity_report(ctx.services.db, charity.id))


@api.get("/api/sessions/{session_id}/charity-report", ANYONE, response=SessionReport)
async def get_session_report(ctx: Ctx) -> Response:
    live = await load_session(ctx.services.db, ctx.path("session_id"))
    return json(await session_report(ctx.services.db, live.id))


@api.get("/api/orders/{order_id}/pledge-receipt", LOGGED_IN, response=PledgeReceipt)
async def pledge_receipt(ctx: Ctx) -> Response:
    """The same for the charity pledge of a settled order, to its buyer."""
    order_id = ctx.path("order_id")
    async with ctx.services.db.reader() as s:
        order = await s.get(Order, order_id)
    if order is None or not (order.buyer_id == ctx.user.user_id or ctx.user.is_admin):
        raise not_found("order", order_id)
    fund = await fund_of(ctx.services, f"pledge:{order.id}")
    body = await build(ctx.services, fund, str(ctx.request.base_url))
    pledge = {
        "id": order.id,
        "order_id": order.id,
        "charity_id": order.charity_id,
        "session_id": order.session_id,
        "amount": order.pledge_amount,
        "currency": order.currency,
        "status": order.status,
    }
    return json({"order": pledge, **body})
