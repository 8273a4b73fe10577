"""HTTP: a sponsor tops up, and reads their funds."""

from __future__ import annotations

from sqlalchemy import select
from starlette.responses import Response

from core.auth import Role
from core.errors import not_found
from core.http import LIMIT, LOGGED_IN, Api, Ctx, json, roles
from core.models import User
from donations.sponsors import service
from donations.sponsors.models import TopUp
from donations.sponsors.schemas import AddFunds, Funds, TopUpReply, top_up_json

api = Api()


@api.post(
    "/api/sponsors/top-ups",
    roles(Role.SPONSOR),
    body=AddFunds,
    idempotent=True,
    status=201,
    response=TopUpReply,
)
async def add_funds(ctx: Ctx) -> Response:
    """Pay money in to fund your matches and pools: answers a pending payment, which you
    open with POST /api/payments/{id}/checkout like an order's."""
    key = ctx.idempotency_key()
    body = await ctx.body(AddFunds)
    out, created = await service.add_funds(ctx.services, ctx.user, body, key)
    return json(out, 201 if created else 200)


@api.get("/api/sponsors/{sponsor_id}/funds", LOGGED_IN, query=(LIMIT,), response=Funds)
async def sponsor_funds(ctx: Ctx) -> Response:
    """What the sponsor paid in, what their matches and pools gave, and the balance (below
    0: what they owe), by currency; their top-ups, newest first."""
    sponsor_id = ctx.path("sponsor_id")
    if sponsor_id != ctx.user.user_id and not ctx.user.is_admin:
        raise not_found("sponsor", sponsor_id)
    async with ctx.services.db.reader() as s:
        if await s.get(User, sponsor_id) is None:
            raise not_found("sponsor", sponsor_id)
        currencies = await service.funds(s, sponsor_id)
        rows = await s.scalars(
            select(TopUp)
            .where(TopUp.sponsor_id == sponsor_id)
            .order_by(TopUp.created_at.desc(), TopUp.id.desc())
            .limit(ctx.query_int("limit"))
        )
        top_ups = [top_up_json(t) for t in rows]
    return json({"sponsor_id": sponsor_id, "currencies": currencies, "top_ups": top_ups})
