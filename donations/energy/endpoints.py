"""HTTP: my points, how they are earned, redeeming into a sponsor pool, its receipt, pools."""

from __future__ import annotations

from sqlalchemy import select
from starlette.responses import Response

from commerce.charities.models import Campaign, Charity
from commerce.sessions.models import LiveSession
from core.auth import Role
from core.clock import utcnow
from core.errors import bad_request, not_found
from core.http import ANYONE, LIMIT, LOGGED_IN, Api, Ctx, Query, json, roles
from core.ids import new_id
from core.money import CURRENCIES
from donations.charity import receipts
from donations.charity.models import CharityFund
from donations.energy import points, pools
from donations.energy.models import PointsPool, PointsRedemption
from donations.energy.rules import rules_of
from donations.energy.schemas import (
    CreatePool,
    EarningRules,
    MyPoints,
    PoolList,
    PoolOut,
    Redeem,
    Redeemed,
    RedemptionReceipt,
)

api = Api()


@api.get("/api/me/points", LOGGED_IN, query=(LIMIT,), response=MyPoints)
async def my_points(ctx: Ctx) -> Response:
    """Balance, what can be redeemed now, lots with their expiry (soonest first), history."""
    now = utcnow()
    async with ctx.services.db.reader() as s:
        st = await points.standing(s, ctx.user.user_id, now)
        past = await points.history(s, ctx.user.user_id, ctx.query_int("limit"))
    return json(
        {
            "balance": st.balance,
            "redeemable": max(0, st.redeemable),
            "blocked": st.redeemable <= 0 < st.balance or st.balance < 0,
            "lots": st.lots,
            "history": past,
        }
    )


@api.post(
    "/api/points/redeem", LOGGED_IN, body=Redeem, idempotent=True, status=201, response=Redeemed
)
async def redeem(ctx: Ctx) -> Response:
    key = ctx.idempotency_key()
    body = await ctx.body(Redeem)
    out, created = await pools.redeem(
        ctx.services, ctx.user, body.pool_id, body.points, body.session_id, key
    )
    return json(out, 201 if created else 200)


@api.get("/api/points/redemptions/{redemption_id}/receipt", LOGGED_IN, response=RedemptionReceipt)
async def redemption_receipt(ctx: Ctx) -> Response:
    """Like a donor's receipt: the log entry, its inclusion proof in a signed checkpoint,
    the salt that opens the entry's commitment to the user, and what the charity spent."""
    rid = ctx.path("redemption_id")
    async with ctx.services.db.reader() as s:
        r = await s.get(PointsRedemption, rid)
        fund = await s.scalar(select(CharityFund).where(CharityFund.ref == f"energy:{rid}"))
    if r is None or fund is None or not (r.user_id == ctx.user.user_id or ctx.user.is_admin):
        raise not_found("redemption", rid)
    body = await receipts.build(ctx.services, fund, str(ctx.request.base_url))
    return json({"redemption": pools.redemption_json(r), **body})


@api.post(
    "/api/pools", roles(Role.SPONSOR, Role.ADMIN), body=CreatePool, status=201, response=PoolOut
)
async def create_pool(ctx: Ctx) -> Response:
    body = await ctx.body(CreatePool)
    async with ctx.services.db.transaction() as s:
        charity_id, currency = body.charity_id, str(body.currency or "") or None
        campaign = None
        if body.session_id is not None:
            live = await s.get(LiveSession, body.session_id)
            if live is None:
                raise not_found("session", body.session_id)
            charity_id = charity_id or live.charity_id
            if live.charity_id != charity_id:
                raise bad_request(
                    "invalid_field", "the session gives to another charity", "charity_id"
                )
            currency = currency or str(live.currency)
            if currency != live.currency:
                raise bad_request(
                    "invalid_field", f"this session is in {live.currency}", "currency"
                )
        if body.campaign_id is not None:
            campaign = await s.get(Campaign, body.campaign_id)
            if campaign is None:
                raise not_found("campaign", body.campaign_id)
            charity_id = charity_id or campaign.charity_id
            if campaign.charity_id != charity_id:
                raise bad_request(
                    "invalid_field", "the campaign is another charity's", "campaign_id"
                )
        if charity_id is None:
            raise bad_request(
                "missing_field", "give a charity, a campaign or a session", "charity_id"
            )
        if await s.get(Charity, charity_id) is None:
            raise not_found("charity", charity_id)
        rate_amount = body.rate_amount or (campaign.unit_cost if campaign else None)
        if rate_amount is None:
            raise bad_request(
                "missing_field", "rate_amount is required without a campaign", "rate_amount"
            )
        pool = PointsPool(
            id=new_id("pol"),
            sponsor_id=ctx.user.user_id,
            sponsor_name=body.sponsor_name,
            charity_id=charity_id,
            campaign_id=body.campaign_id,
            session_id=body.session_id,
            currency=currency or "IDR",
            rate_points=body.rate_points,
            rate_amount=rate_amount,
            cap=body.cap,
        )
        s.add(pool)
        await s.flush()
        await s.refresh(pool)
    return json(pools.pool_json(pool, 0, campaign), 201)


@api.get("/api/pools", ANYONE, query=(Query("charity_id"), Query("session_id")), response=PoolList)
async def list_pools(ctx: Ctx) -> Response:
    """`?charity_id=` or `?session_id=` (a room: its own pools and its charity's)."""
    charity_id, session_id = ctx.query("charity_id"), ctx.query("session_id")
    async with ctx.services.db.reader() as s:
        q = select(PointsPool).order_by(PointsPool.created_at, PointsPool.id)
        if session_id:
            live = await s.get(LiveSession, session_id)
            if live is None:
                raise not_found("session", session_id)
            q = q.where(
                PointsPool.charity_id == live.charity_id,
                (PointsPool.session_id.is_(None)) | (PointsPool.session_id == live.id),
                (PointsPool.campaign_id.is_(None)) | (PointsPool.campaign_id == live.campaign_id),
            )
        elif charity_id:
            q = q.where(PointsPool.charity_id == charity_id)
        else:
            raise bad_request("missing_field", "give charity_id or session_id", "charity_id")
        out = []
        for pool in (await s.execute(q.limit(100))).scalars():
            campaign = await s.get(Campaign, pool.campaign_id) if pool.campaign_id else None
            out.append(pools.pool_json(pool, await pools.used(s, pool), campaign))
    return json({"pools": out})


@api.get("/api/points/rules", ANYONE, response=EarningRules)
async def earning_rules(ctx: Ctx) -> Response:
    """How points are earned here (this deployment's rules), for the pages to explain."""
    r = rules_of(ctx.services.settings)
    currencies = sorted(CURRENCIES)
    return json(
        {
            "watch_minute_s": r.watch_minute_s,
            "watch_points_per_minute": r.watch_points_per_minute,
            "watch_max_minutes_per_session": r.watch_max_minutes_per_session,
            "watch_max_minutes_per_day": r.watch_max_minutes_per_day,
            "likes_per_point": r.likes_per_point,
            "like_max_points_per_session": r.like_max_points_per_session,
            "spend_minor_per_point": {c: r.spend_rate(c) for c in currencies if r.spend_rate(c)},
            "donate_minor_per_point": {c: r.donate_rate(c) for c in currencies if r.donate_rate(c)},
            "points_ttl_s": r.points_ttl_s,
        }
    )
