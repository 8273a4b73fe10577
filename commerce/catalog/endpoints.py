"""HTTP: farmers and their products."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from commerce.catalog.models import Farmer, Product
from commerce.catalog.schemas import (
    CreateFarmer,
    CreateProduct,
    FarmerOut,
    ProductOut,
    ProductPage,
    farmer_json,
    product_json,
)
from commerce.catalog.service import load_farmer, require_farmer_or_admin
from core.accounts import grant_role
from core.auth import Role
from core.errors import conflict, not_found
from core.http import ANYONE, LIMIT, LOGGED_IN, Api, Ctx, Query, json, roles
from core.ids import new_id

api = Api()


@api.post("/api/farmers", roles(Role.ADMIN), body=CreateFarmer, status=201, response=FarmerOut)
async def create_farmer(ctx: Ctx) -> Response:
    body = await ctx.body(CreateFarmer)
    farmer = Farmer(id=new_id("frm"), user_id=body.user_id, name=body.name, region=body.region)
    try:
        async with ctx.services.db.transaction() as s:
            await grant_role(s, body.user_id, Role.FARMER)
            s.add(farmer)
    except IntegrityError:
        raise conflict(
            "already_farmer", "that user already has a farmer profile", field="user_id"
        ) from None
    ctx.services.identities.forget(body.user_id)  # their new role, at once on this process
    return json(farmer_json(farmer), 201)


@api.get("/api/farmers/{farmer_id}", ANYONE, response=FarmerOut)
async def get_farmer(ctx: Ctx) -> Response:
    return json(farmer_json(await load_farmer(ctx.services.db, ctx.path("farmer_id"))))


@api.get("/api/me/farmer", LOGGED_IN, response=FarmerOut)
async def my_farmer(ctx: Ctx) -> Response:
    """The caller's own farmer profile, so a farmer's pages need no id in the address."""
    async with ctx.services.db.reader() as s:
        farmer = await s.scalar(select(Farmer).where(Farmer.user_id == ctx.user.user_id))
    if farmer is None:
        raise not_found("farmer", f"user:{ctx.user.user_id}")
    return json(farmer_json(farmer))


@api.post(
    "/api/products",
    roles(Role.FARMER, Role.ADMIN),
    body=CreateProduct,
    status=201,
    response=ProductOut,
)
async def create_product(ctx: Ctx) -> Response:
    body = await ctx.body(CreateProduct)
    farmer = await load_farmer(ctx.services.db, body.farmer_id)
    require_farmer_or_admin(ctx.user, farmer)
    product = Product(id=new_id("prd"), **body.model_dump())
    async with ctx.services.db.transaction() as s:
        s.add(product)
    return json(product_json(product), 201)


@api.get(
    "/api/products",
    ANYONE,
    query=(LIMIT, Query("farmer_id"), Query("before")),
    response=ProductPage,
)
async def list_products(ctx: Ctx) -> Response:
    limit = ctx.query_int("limit")
    query = select(Product).order_by(Product.id.desc()).limit(limit)
    farmer_id = ctx.query("farmer_id")
    if farmer_id is not None:
        query = query.where(Product.farmer_id == farmer_id)
    before = ctx.query("before")
    if before:
        query = query.where(Product.id < before)
    async with ctx.services.db.reader() as s:
        products = (await s.execute(query)).scalars().all()
    return json(
        {
            "products": [product_json(p) for p in products],
            "next_before": products[-1].id if len(products) == limit else None,
        }
    )
