"""HTTP: a buyer's addresses, a farmer's shipping rates, quotes, shipments and packing lists.
(Moving a shipment along is a flow: `panen.flows.endpoints`.)"""

from __future__ import annotations

import csv
import io

from sqlalchemy import select
from starlette.responses import Response

from commerce.catalog.service import load_farmer, require_farmer_or_admin
from commerce.sessions import offers
from commerce.sessions.models import LiveSession
from commerce.shipping import service, zones
from commerce.shipping.lifecycle import ShipmentStatus
from commerce.shipping.models import Shipment
from commerce.shipping.schemas import (
    ADDRESS_FIELDS,
    AddressBody,
    AddressList,
    AddressReply,
    PackedProduct,
    PackingList,
    QuoteOut,
    RateOut,
    RatesOut,
    SetRates,
    ShipmentOut,
    ShipmentPage,
    address_json,
)
from core.clock import utcnow
from core.errors import bad_request, conflict, not_found
from core.http import ANYONE, LIMIT, LOGGED_IN, Api, Ctx, Query, json
from core.shapes import TypedDict, closed

api = Api()

ADDRESS_ID = "address_id"


@closed
class Removed(TypedDict):
    id: str
    status: str


@api.get("/api/me/addresses", LOGGED_IN, response=AddressList)
async def my_addresses(ctx: Ctx) -> Response:
    """The caller's shipping addresses, the default first."""
    async with ctx.services.db.reader() as s:
        found = await service.addresses_of(s, ctx.user.user_id)
    return json({"addresses": [address_json(a) for a in found]})


@api.post("/api/me/addresses", LOGGED_IN, body=AddressBody, status=201, response=AddressReply)
async def add_address(ctx: Ctx) -> Response:
    """A new address; the first one, or one marked `is_default`, is the default."""
    body = await ctx.body(AddressBody)
    address = await ctx.services.db.run(lambda s: service.add_address(s, ctx.user.user_id, body))
    return json({"address": address_json(address)}, 201)


@api.route(
    "PUT", "/api/me/addresses/{address_id}", LOGGED_IN, body=AddressBody, response=AddressReply
)
async def replace_address(ctx: Ctx) -> Response:
    """Edit an address: it gets a new id (orders keep the one they were bought for)."""
    body = await ctx.body(AddressBody)
    address = await ctx.services.db.run(
        lambda s: service.replace_address(s, ctx.user.user_id, ctx.path(ADDRESS_ID), body)
    )
    return json({"address": address_json(address)})


@api.route("DELETE", "/api/me/addresses/{address_id}", LOGGED_IN, response=Removed)
async def remove_address(ctx: Ctx) -> Response:
    """Remove an address (orders keep it); the newest other one becomes the default."""
    address_id = ctx.path(ADDRESS_ID)
    await ctx.services.db.run(lambda s: service.remove_address(s, ctx.user.user_id, address_id))
    return json({"id": address_id, "status": "removed"})


@api.post("/api/me/addresses/{address_id}/default", LOGGED_IN, response=AddressReply)
async def make_default(ctx: Ctx) -> Response:
    """Orders that name no address go here."""
    address = await ctx.services.db.run(
        lambda s: service.make_default(s, ctx.user.user_id, ctx.path(ADDRESS_ID))
    )
    return json({"address": address_json(address)})


CURRENCY = Query("currency", choices=("IDR", "CNY", "USD", "SGD", "MYR", "JPY"))


@api.get("/api/farmers/{farmer_id}/shipping", ANYONE, query=(CURRENCY,), response=RatesOut)
async def get_rates(ctx: Ctx) -> Response:
    """What the farmer charges to ship, by zone (public: buyers see it before they buy)."""
    farmer = await load_farmer(ctx.services.db, ctx.path("farmer_id"))
    currency = ctx.query("currency") or "IDR"
    async with ctx.services.db.reader() as s:
        rates = await service.rates_of(s, farmer.id, currency)
    return json(_rates(farmer.id, currency, rates))


@api.route("PUT", "/api/farmers/{farmer_id}/shipping", LOGGED_IN, body=SetRates, response=RatesOut)
async def set_rates(ctx: Ctx) -> Response:
    """Replace the farmer's rates in a currency (no rates: free shipping)."""
    farmer = await load_farmer(ctx.services.db, ctx.path("farmer_id"))
    require_farmer_or_admin(ctx.user, farmer)
    body = await ctx.body(SetRates)
    async with ctx.services.db.transaction() as s:
        await service.set_rates(s, farmer.id, body)
    async with ctx.services.db.reader() as s:
        rates = await service.rates_of(s, farmer.id, body.currency)
    return json(_rates(farmer.id, body.currency, rates))


def _rates(farmer_id: str, currency: str, rates: list[RateOut]) -> RatesOut:
    return {
        "farmer_id": farmer_id,
        "currency": currency,
        "rates": rates,
        "free": not rates,
        "zones": list(zones.ZONES),
    }


@api.get(
    "/api/shipping/quote",
    LOGGED_IN,
    query=(
        Query("listing_id", required=True),
        Query("quantity", int, 1, 1, 1000),
        Query(ADDRESS_ID),
    ),
    response=QuoteOut,
)
async def quote(ctx: Ctx) -> Response:
    """What buying `quantity` of a listing now would cost, shipping included, before the
    buyer commits: its own kilograms, and the base fee unless its box already holds a paid
    order."""
    listing_id = str(ctx.query("listing_id"))
    quantity = ctx.query_int("quantity")
    session_offers = await offers.offers_for_listing(ctx.services, listing_id)
    offer = session_offers.offer(listing_id, utcnow())
    if offer is None:
        raise not_found("listing", listing_id)
    currency = session_offers.currency
    async with ctx.services.db.reader() as s:
        address = await service.address_for(s, ctx.user.user_id, ctx.query(ADDRESS_ID))
        if address is None:
            if ctx.query(ADDRESS_ID) is None:
                raise conflict("address_required", "add a shipping address first", field=ADDRESS_ID)
            raise bad_request("invalid_field", "address_id: not one of your addresses", ADDRESS_ID)
        rates = await service.rates_of(s, offer.farmer_id, currency)
        paid = await service.box_is_paid(
            s, session_offers.session_id, ctx.user.user_id, offer.farmer_id, address.id
        )
    weight = offer.weight_g * quantity
    rate = service.rate_for(rates, address.zone)
    fee = 0 if rate is None else zones.order_fee(rate[0], rate[1], weight, paid)
    total = offer.price * quantity
    return json(
        {
            "listing_id": listing_id,
            "quantity": quantity,
            "address_id": address.id,
            "address_label": f"{address.recipient}, {address.city}",
            "zone": address.zone,
            "weight_g": weight,
            "shippable": rate is not None,
            "shipping_fee": fee,
            "total": total,
            "amount": total + fee,
            "currency": currency,
        }
    )


# --- Shipments -------------------------------------------------------------------------------

STATUS = Query("status", choices=tuple(ShipmentStatus))


@api.get("/api/me/shipments", LOGGED_IN, query=(LIMIT, Query("before")), response=ShipmentPage)
async def my_shipments(ctx: Ctx) -> Response:
    """The caller's boxes, newest first, with what is in each and where it is."""
    limit = ctx.query_int("limit")
    q = (
        select(Shipment)
        .where(Shipment.buyer_id == ctx.user.user_id)
        .order_by(Shipment.id.desc())
        .limit(limit)
    )
    if before := ctx.query("before"):
        q = q.where(Shipment.id < before)
    async with ctx.services.db.reader() as s:
        rows = list(await s.scalars(q))
        out = await service.describe(s, rows, ctx.services.settings.complete_after_s)
    return json({"shipments": out, "next_before": _next(out, limit)})


def _next(page: list[ShipmentOut], limit: int) -> str | None:
    return page[-1]["id"] if len(page) == limit else None


@api.get(
    "/api/farmers/{farmer_id}/shipments",
    LOGGED_IN,
    query=(LIMIT, Query("before"), Query("session_id"), STATUS),
    response=ShipmentPage,
)
async def farmer_shipments(ctx: Ctx) -> Response:
    """The farmer's boxes, newest first; by session and status."""
    farmer = await load_farmer(ctx.services.db, ctx.path("farmer_id"))
    require_farmer_or_admin(ctx.user, farmer)
    limit = ctx.query_int("limit")
    q = select(Shipment).where(Shipment.farmer_id == farmer.id).order_by(Shipment.id.desc())
    if session_id := ctx.query("session_id"):
        q = q.where(Shipment.session_id == session_id)
    if status := ctx.query("status"):
        q = q.where(Shipment.status == status)
    if before := ctx.query("before"):
        q = q.where(Shipment.id < before)
    async with ctx.services.db.reader() as s:
        rows = list(await s.scalars(q.limit(limit)))
        out = await service.describe(s, rows, ctx.services.settings.complete_after_s)
    return json({"shipments": out, "next_before": _next(out, limit)})


TO_PACK = (ShipmentStatus.PACKING, ShipmentStatus.PACKED)
WHICH = Query("boxes", choices=("to_pack", "all"))


async def _packing(ctx: Ctx) -> PackingList:
    farmer = await load_farmer(ctx.services.db, ctx.path("farmer_id"))
    require_farmer_or_admin(ctx.user, farmer)
    session_id = str(ctx.query("session_id"))
    q = (
        select(Shipment)
        .where(Shipment.farmer_id == farmer.id, Shipment.session_id == session_id)
        .order_by(Shipment.province, Shipment.city, Shipment.recipient, Shipment.id)
    )
    if ctx.query("boxes") != "all":
        q = q.where(Shipment.status.in_([str(t) for t in TO_PACK]))
    async with ctx.services.db.reader() as s:
        title = await s.scalar(select(LiveSession.title).where(LiveSession.id == session_id))
        if title is None:
            raise not_found("session", session_id)
        rows = list(await s.scalars(q))
        boxes = await service.describe(s, rows, ctx.services.settings.complete_after_s)
    totals: dict[tuple[str, str], int] = {}
    for b in boxes:
        for i in b["items"]:
            if i["status"] in service.IN_BOX:
                key = (i["product_name"], i["unit"])
                totals[key] = totals.get(key, 0) + i["quantity"]
    by_product: list[PackedProduct] = [
        {"product_name": n, "unit": u, "quantity": q} for (n, u), q in sorted(totals.items())
    ]
    return {
        "farmer_id": farmer.id,
        "session_id": session_id,
        "session_title": title,
        "boxes": len(boxes),
        "units": sum(totals.values()),
        "weight_g": sum(b["weight_g"] for b in boxes),
        "by_product": by_product,
        "shipments": boxes,
    }


PACKING_QUERY = (Query("session_id", required=True), WHICH)


@api.get(
    "/api/farmers/{farmer_id}/packing-list",
    LOGGED_IN,
    query=PACKING_QUERY,
    response=PackingList,
)
async def packing_list(ctx: Ctx) -> Response:
    """What to pack for whom in a session: each box still to pack (or `boxes=all`) with
    its address and contents, and the units of each product in all of them."""
    return json(await _packing(ctx))


# Characters a spreadsheet skips before it decides a cell is a formula.
_INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060"


def _cell(value: object) -> object:
    """A spreadsheet reads a cell starting = + - @ as a formula (after any invisible
    characters): text gets a quote mark."""
    if isinstance(value, str):
        value = " ".join(value.split())
        return "'" + value if value.lstrip(_INVISIBLE)[:1] in ("=", "+", "-", "@") else value
    return value


@api.get(
    "/api/farmers/{farmer_id}/packing-list.csv",
    LOGGED_IN,
    query=PACKING_QUERY,
    media_type="text/csv",
)
async def packing_list_csv(ctx: Ctx) -> Response:
    """The packing list as CSV, a line per product per box."""
    packing = await _packing(ctx)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    items = ("product_name", "unit", "quantity", "weight_g", "order_id")
    writer.writerow(["shipment_id", "status", *ADDRESS_FIELDS, *items])
    for b in packing["shipments"]:
        where = [b.get(f) or "" for f in ADDRESS_FIELDS]
        for i in b["items"]:
            if i["status"] in service.IN_BOX:
                what = [i.get(f) for f in items]
                writer.writerow([_cell(x) for x in (b["id"], b["status"], *where, *what)])
    name = "".join(
        c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in packing["session_id"]
    )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="packing-{name}.csv"'},
    )
