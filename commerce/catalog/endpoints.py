"""HTTP: farmers, their products and the products' photos."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from commerce.catalog.models import Farmer, Product, ProductImage
from commerce.catalog.schemas import (
    CreateFarmer,
    CreateProduct,
    FarmerOut,
    ProductOut,
    ProductPage,
    farmer_json,
    product_json,
)
from commerce.catalog.service import (
    MAX_UPLOAD_BYTES,
    UPLOAD_TYPES,
    etag_matches,
    load_farmer,
    normalise_photo,
    photo_url,
    photo_version,
    require_farmer_or_admin,
)
from core.accounts import grant_role
from core.auth import Role
from core.clock import utcnow
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
    async with ctx.services.db.lagging() as s:
        products = (await s.execute(query)).scalars().all()
    return json(
        {
            "products": [product_json(p) for p in products],
            "next_before": products[-1].id if len(products) == limit else None,
        }
    )


@api.route(
    "PUT",
    "/api/products/{product_id}/image",
    roles(Role.FARMER, Role.ADMIN),
    upload=UPLOAD_TYPES,
    response=ProductOut,
)
async def put_product_image(ctx: Ctx) -> Response:
    """The product's photo (JPEG, PNG or WebP, at most 8 MiB): kept re-encoded, without its
    metadata, and shown on every listing of the product."""
    product_id = ctx.path("product_id")
    async with ctx.services.db.reader() as s:
        product = await s.get(Product, product_id)
        farmer = await s.get(Farmer, product.farmer_id) if product is not None else None
    if product is None or farmer is None:
        raise not_found("product", product_id)
    require_farmer_or_admin(ctx.user, farmer)
    raw, _ = await ctx.upload(MAX_UPLOAD_BYTES)
    photo = await asyncio.to_thread(normalise_photo, raw)  # CPU work off the event loop
    async with ctx.services.db.transaction() as s:
        await s.execute(
            insert(ProductImage)
            .values(
                product_id=product_id,
                sha256=photo.sha256,
                content_type=photo.content_type,
                width=photo.width,
                height=photo.height,
                data=photo.data,
            )
            .on_conflict_do_update(
                index_elements=[ProductImage.product_id],
                set_={
                    "sha256": photo.sha256,
                    "content_type": photo.content_type,
                    "width": photo.width,
                    "height": photo.height,
                    "data": photo.data,
                    "created_at": utcnow(),
                },
            )
        )
        stored = await s.get(Product, product_id, with_for_update=True)
        assert stored is not None  # products are never deleted
        stored.image_url = photo_url(product_id, photo.sha256)
        out = product_json(stored)
    return json(out)


@api.get("/api/products/{product_id}/image", ANYONE, query=(Query("v"),), media_type="image/webp")
async def get_product_image(ctx: Ctx) -> Response:
    """The product's photo as stored; with the `v` its `image_url` carries, cached for good."""
    product_id = ctx.path("product_id")
    version = ctx.query("v")
    async with ctx.services.db.reader() as s:
        image = await s.get(ProductImage, product_id)
    if image is None:
        raise not_found("image", product_id)
    etag = f'"{image.sha256[:32]}"'
    current = version == photo_version(image.sha256)
    headers = {
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        # The address names this exact photo: keep it. Without it (or an old one), the photo
        # may change: ask again each time, cheaply, with the ETag.
        "Cache-Control": "public, max-age=31536000, immutable" if current else "no-cache",
    }
    if etag_matches(ctx.request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(image.data, media_type=image.content_type, headers=headers)
