"""HTTP: placing and reading orders, and a farmer's totals. (Cancelling is a flow that
joins orders to the charity's books: `panen.flows.endpoints`.)"""

from __future__ import annotations

from sqlalchemy import select
from starlette.responses import Response

from commerce.catalog.service import load_farmer, require_farmer_or_admin
from commerce.orders.models import Order
from commerce.orders.schemas import FarmerTotals, OrderPage, OrderReply, PlaceOrder
from commerce.orders.service import host_of, load_order, load_orders, may_read, place_order
from commerce.orders.totals import farmer_totals
from core.errors import not_found
from core.http import LIMIT, LOGGED_IN, Api, Ctx, Query, json

api = Api()


@api.post(
    "/api/orders",
    LOGGED_IN,
    body=PlaceOrder,
    idempotent=True,
    status=201,
    response=OrderReply,
)
async def create_order(ctx: Ctx) -> Response:
    key = ctx.idempotency_key()
    body = await ctx.body(PlaceOrder)
    order, created = await place_order(ctx.services, ctx.user, body, key)
    return json({"order": order}, 201 if created else 200)


@api.get("/api/orders/{order_id}", LOGGED_IN, response=OrderReply)
async def get_order(ctx: Ctx) -> Response:
    order_id = ctx.path("order_id")
    async with ctx.services.db.reader() as s:
        order = await load_order(s, order_id)
    if order is None or not may_read(
        ctx.user, order, await host_of(ctx.services, order["session_id"])
    ):
        raise not_found("order", order_id)
    return json({"order": order})


@api.get("/api/me/orders", LOGGED_IN, query=(LIMIT, Query("before")), response=OrderPage)
async def my_orders(ctx: Ctx) -> Response:
    limit = ctx.query_int("limit")
    query = (
        select(Order.id)
        .where(Order.buyer_id == ctx.user.user_id)
        .order_by(Order.id.desc())
        .limit(limit)
    )
    before = ctx.query("before")
    if before:
        query = query.where(Order.id < before)
    async with ctx.services.db.reader() as s:
        ids = (await s.execute(query)).scalars().all()
        found = await load_orders(s, ids)
    orders = [found[i] for i in ids if i in found]
    return json(
        {"orders": orders, "next_before": orders[-1]["id"] if len(orders) == limit else None}
    )


@api.get("/api/farmers/{farmer_id}/totals", LOGGED_IN, response=FarmerTotals)
async def get_farmer_totals(ctx: Ctx) -> Response:
    farmer = await load_farmer(ctx.services.db, ctx.path("farmer_id"))
    require_farmer_or_admin(ctx.user, farmer)
    return json(await farmer_totals(ctx.services.db, farmer.id))
