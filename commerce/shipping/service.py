"""What shipping does: buyers' addresses, farmers' rates and quotes, boxing settled sales,
and reading shipments (a buyer's, a farmer's, a session's packing list).

Moving a shipment along (packed, shipped, delivered) is `panen.flows.delivery`, because
its end joins commerce to the charity's books: completion releases the pledge, a failed
delivery refunds its orders.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from commerce.catalog.models import Farmer, Product
from commerce.orders.lifecycle import COUNTED
from commerce.orders.models import Order
from commerce.sessions.models import Listing, LiveSession
from commerce.shipping import lifecycle, zones
from commerce.shipping.events import moved
from commerce.shipping.lifecycle import ShipmentStatus
from commerce.shipping.models import Address, Shipment, ShipmentStatusChange, ShippingRate
from commerce.shipping.schemas import (
    ADDRESS_FIELDS,
    AddressBody,
    RateOut,
    SetRates,
    ShipmentItem,
    ShipmentOut,
    history_json,
)
from core.clock import rfc3339
from core.errors import conflict, not_found
from core.events import Topical
from core.ids import new_id
from core.models import User

MAX_ADDRESSES = 20  # a buyer's live addresses
# The orders a box still holds: its sales that were not refunded.
IN_BOX = frozenset(str(c) for c in COUNTED)


# --- Addresses ------------------------------------------------------------------------------


async def _serialise(s: AsyncSession, user_id: str) -> None:
    """One change to a buyer's addresses at a time (the default is unique among them)."""
    await s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"addr:{user_id}"})


async def addresses_of(s: AsyncSession, user_id: str) -> list[Address]:
    rows = await s.scalars(
        select(Address)
        .where(Address.user_id == user_id, Address.archived.is_(False))
        .order_by(Address.is_default.desc(), Address.created_at.desc(), Address.id)
    )
    return list(rows)


async def _owned(s: AsyncSession, user_id: str, address_id: str) -> Address:
    found = await s.get(Address, address_id, with_for_update=True)
    if found is None or found.user_id != user_id or found.archived:
        raise not_found("address", address_id)
    return found


async def _clear_default(s: AsyncSession, user_id: str) -> None:
    await s.execute(
        update(Address)
        .where(Address.user_id == user_id, Address.is_default.is_(True))
        .values(is_default=False)
    )


async def add_address(
    s: AsyncSession, user_id: str, body: AddressBody, default: bool | None = None
) -> Address:
    """A new address; the buyer's first is their default, and one marked default becomes it."""
    await _serialise(s, user_id)
    live = await addresses_of(s, user_id)
    if len(live) >= MAX_ADDRESSES:
        raise conflict(
            "too_many_addresses", f"at most {MAX_ADDRESSES} addresses", limit=MAX_ADDRESSES
        )
    is_default = body.is_default if default is None else default
    is_default = is_default or not live
    if is_default:
        await _clear_default(s, user_id)
    address = Address(
        id=new_id("adr"),
        user_id=user_id,
        label=body.label,
        **{name: getattr(body, name) for name in ADDRESS_FIELDS},
        zone=zones.zone_of(body.province),
        is_default=is_default,
    )
    s.add(address)
    await s.flush()
    return address


async def replace_address(
    s: AsyncSession, user_id: str, address_id: str, body: AddressBody
) -> Address:
    """An edit: the old address is archived (orders keep it) and a new one takes its place,
    keeping its default."""
    await _serialise(s, user_id)
    old = await _owned(s, user_id, address_id)
    old.archived, was_default = True, old.is_default
    old.is_default = False
    await s.flush()
    return await add_address(s, user_id, body, default=body.is_default or was_default)


async def remove_address(s: AsyncSession, user_id: str, address_id: str) -> None:
    """Archive an address; if it was the default, the newest other one becomes it."""
    await _serialise(s, user_id)
    old = await _owned(s, user_id, address_id)
    old.archived, was_default = True, old.is_default
    old.is_default = False
    await s.flush()
    if was_default:
        rest = await addresses_of(s, user_id)
        if rest:
            rest[0].is_default = True


async def make_default(s: AsyncSession, user_id: str, address_id: str) -> Address:
    await _serialise(s, user_id)
    address = await _owned(s, user_id, address_id)
    await _clear_default(s, user_id)
    await s.flush()
    address.is_default = True
    return address


async def address_for(s: AsyncSession, user_id: str, address_id: str | None) -> Address | None:
    """The address an order would go to: the one named (the buyer's own), or the default."""
    if address_id is None:
        return await s.scalar(
            select(Address).where(
                Address.user_id == user_id,
                Address.is_default.is_(True),
                Address.archived.is_(False),
            )
        )
    found = await s.get(Address, address_id)
    return found if found and found.user_id == user_id and not found.archived else None


# --- Rates and quotes -------------------------------------------------------------------


async def rates_of(s: AsyncSession, farmer_id: str, currency: str) -> list[RateOut]:
    rows = await s.scalars(
        select(ShippingRate)
        .where(ShippingRate.farmer_id == farmer_id, ShippingRate.currency == currency)
        .order_by(ShippingRate.zone)
    )
    return [{"zone": r.zone, "base_fee": r.base_fee, "per_kg_fee": r.per_kg_fee} for r in rows]


async def set_rates(s: AsyncSession, farmer_id: str, body: SetRates) -> None:
    await s.execute(
        text("DELETE FROM shipping_rates WHERE farmer_id = :f AND currency = :c"),
        {"f": farmer_id, "c": body.currency},
    )
    for r in body.rates:
        s.add(
            ShippingRate(
                farmer_id=farmer_id,
                currency=body.currency,
                zone=r.zone,
                base_fee=r.base_fee,
                per_kg_fee=r.per_kg_fee,
            )
        )


def rate_for(rates: Sequence[RateOut], zone: str) -> tuple[int, int] | None:
    """(base, per_kg) for a zone: its own rate, else the `*` rate; free with no rates at
    all; None where the farmer does not ship."""
    if not rates:
        return (0, 0)
    by_zone = {r["zone"]: r for r in rates}
    rate = by_zone.get(zone) or by_zone.get(zones.ANY_ZONE)
    return None if rate is None else (rate["base_fee"], rate["per_kg_fee"])


async def box_is_paid(
    s: AsyncSession, session_id: str, buyer_id: str, farmer_id: str, address_id: str
) -> bool:
    """Whether the box an order would join already holds a paid order (which paid the base
    fee), as the order writer asks it (`commerce.orders.writer.BOX_PAID`)."""
    found = await s.scalar(
        text(
            "SELECT 1 FROM orders o WHERE o.session_id = :s AND o.buyer_id = :b"
            " AND o.farmer_id = :f AND o.address_id = :a AND o.status IN ('paid', 'settled')"
            " AND (o.shipment_id IS NULL OR EXISTS (SELECT 1 FROM shipments sh"
            "  WHERE sh.id = o.shipment_id AND sh.status = 'packing')) LIMIT 1"
        ),
        {"s": session_id, "b": buyer_id, "f": farmer_id, "a": address_id},
    )
    return found is not None


# --- Boxes: where a settled sale goes -------------------------------------------------------

_OPEN_BOXES = text(
    """
INSERT INTO shipments (id, session_id, buyer_id, farmer_id, address_id, recipient, phone,
                       street, district, city, province, postal_code, notes, status)
SELECT k.id, k.session_id, k.buyer_id, k.farmer_id, a.id, a.recipient, a.phone, a.street,
       a.district, a.city, a.province, a.postal_code, a.notes, 'packing'
  FROM unnest(CAST(:ids AS text[]), CAST(:sessions AS text[]), CAST(:buyers AS text[]),
              CAST(:farmers AS text[]), CAST(:addresses AS text[]))
       AS k(id, session_id, buyer_id, farmer_id, address_id)
  JOIN addresses a ON a.id = k.address_id
 ORDER BY k.session_id, k.buyer_id, k.farmer_id, k.address_id
ON CONFLICT (session_id, buyer_id, farmer_id, address_id) WHERE status = 'packing' DO NOTHING
RETURNING id
"""
)

Key = tuple[str, str, str, str]  # session, buyer, farmer, address


def _key(o: Order) -> Key:
    assert o.address_id is not None
    return (o.session_id, o.buyer_id, o.farmer_id, o.address_id)


async def box(s: AsyncSession, orders: Sequence[Order], at: datetime) -> list[Topical]:
    """Put settled orders (locked by the caller) into the box being packed for their
    session, buyer, farmer and address, opening one where there is none. Boxes are taken
    after orders in the lock order; a box the farmer packed a moment ago is skipped (its
    lock is waited for, then its status read again) and the next one opened."""
    keys = sorted({_key(o) for o in orders if o.address_id is not None})
    if not keys:
        return []
    found: dict[Key, str] = {}
    opened: set[str] = set()
    for _ in range(3):
        missing = [k for k in keys if k not in found]
        if not missing:
            break
        ids = [new_id("shp") for _ in missing]
        made = await s.execute(
            _OPEN_BOXES,
            {
                "ids": ids,
                "sessions": [k[0] for k in missing],
                "buyers": [k[1] for k in missing],
                "farmers": [k[2] for k in missing],
                "addresses": [k[3] for k in missing],
            },
        )
        opened |= {r[0] for r in made}
        rows = await s.execute(
            text(
                "SELECT id, session_id, buyer_id, farmer_id, address_id FROM shipments"
                " WHERE status = 'packing' AND (session_id, buyer_id, farmer_id, address_id)"
                " IN (SELECT * FROM unnest(CAST(:s AS text[]), CAST(:b AS text[]),"
                "  CAST(:f AS text[]), CAST(:a AS text[])))"
                " ORDER BY id FOR UPDATE"
            ),
            {
                "s": [k[0] for k in missing],
                "b": [k[1] for k in missing],
                "f": [k[2] for k in missing],
                "a": [k[3] for k in missing],
            },
        )
        for r in rows:
            found[(r[1], r[2], r[3], r[4])] = r[0]
    if any(k not in found for k in keys):  # packed three times over as we opened them
        raise RuntimeError("no box could be opened for some settled orders")
    for shipment_id in sorted(opened):
        lifecycle.opened(s, shipment_id, at)
    members = [(o.id, found[_key(o)]) for o in orders if o.address_id is not None]
    await s.execute(
        text(
            "UPDATE orders SET shipment_id = m.shipment_id FROM unnest(CAST(:o AS text[]),"
            " CAST(:sh AS text[])) AS m(order_id, shipment_id) WHERE orders.id = m.order_id"
        ),
        {"o": [m[0] for m in members], "sh": [m[1] for m in members]},
    )
    for o in orders:
        if o.address_id is not None:
            set_committed_value(o, "shipment_id", found[_key(o)])  # as written, not again
    by_box: dict[str, list[str]] = defaultdict(list)
    for order_id, shipment_id in members:
        by_box[shipment_id].append(order_id)
    boxes = await s.scalars(select(Shipment).where(Shipment.id.in_(list(by_box))))
    events: list[Topical] = []
    for shipment in boxes:
        events += moved(shipment, by_box[shipment.id], at)
    return events


async def lock(s: AsyncSession, shipment_id: str) -> Shipment | None:
    return await s.get(Shipment, shipment_id, with_for_update=True, populate_existing=True)


async def order_ids_in(s: AsyncSession, shipment_id: str, statuses: Sequence[str]) -> list[str]:
    rows = await s.scalars(
        select(Order.id)
        .where(Order.shipment_id == shipment_id, Order.status.in_(list(statuses)))
        .order_by(Order.id)
    )
    return list(rows)


# --- Reading --------------------------------------------------------------------------------


async def describe(
    s: AsyncSession, shipments: Sequence[Shipment], complete_after_s: int, history: bool = False
) -> list[ShipmentOut]:
    """Shipments as JSON with their items (orders still in them), in four queries."""
    if not shipments:
        return []
    ids = [sh.id for sh in shipments]
    rows = (
        await s.execute(
            select(Order, Product.name, Product.unit)
            .join(Listing, Listing.id == Order.listing_id)
            .join(Product, Product.id == Listing.product_id)
            .where(Order.shipment_id.in_(ids))
            .order_by(Order.id)
        )
    ).all()
    items: dict[str, list[ShipmentItem]] = defaultdict(list)
    currency: dict[str, str] = {}
    for order, name, unit in rows:
        assert order.shipment_id is not None
        currency[order.shipment_id] = order.currency
        items[order.shipment_id].append(
            {
                "order_id": order.id,
                "listing_id": order.listing_id,
                "product_name": name,
                "unit": unit,
                "quantity": order.quantity,
                "weight_g": order.weight_g,
                "shipping_fee": order.shipping_fee,
                "total": order.total,
                "status": order.status,
            }
        )
    names = dict(
        (
            await s.execute(
                select(User.id, User.display_name).where(
                    User.id.in_({sh.buyer_id for sh in shipments})
                )
            )
        ).all()
    )
    farmers = dict(
        (
            await s.execute(
                select(Farmer.id, Farmer.name).where(
                    Farmer.id.in_({sh.farmer_id for sh in shipments})
                )
            )
        ).all()
    )
    titles = dict(
        (
            await s.execute(
                select(LiveSession.id, LiveSession.title).where(
                    LiveSession.id.in_({sh.session_id for sh in shipments})
                )
            )
        ).all()
    )
    changes: dict[str, list[ShipmentStatusChange]] = defaultdict(list)
    if history:
        for h in await s.scalars(
            select(ShipmentStatusChange)
            .where(ShipmentStatusChange.shipment_id.in_(ids))
            .order_by(ShipmentStatusChange.id)
        ):
            changes[h.shipment_id].append(h)
    out: list[ShipmentOut] = []
    for sh in shipments:
        # What the box holds: the sales still in it (a refunded one left it).
        kept = [i for i in items[sh.id] if i["status"] in IN_BOX]
        completes = (
            sh.delivered_at + timedelta(seconds=complete_after_s)
            if sh.status == ShipmentStatus.DELIVERED and sh.delivered_at is not None
            else None
        )
        one: ShipmentOut = {
            "id": sh.id,
            "session_id": sh.session_id,
            "session_title": titles.get(sh.session_id, ""),
            "buyer_id": sh.buyer_id,
            "buyer_name": names.get(sh.buyer_id, ""),
            "farmer_id": sh.farmer_id,
            "farmer_name": farmers.get(sh.farmer_id, ""),
            "status": sh.status,
            "recipient": sh.recipient,
            "phone": sh.phone,
            "street": sh.street,
            "district": sh.district,
            "city": sh.city,
            "province": sh.province,
            "postal_code": sh.postal_code,
            "notes": sh.notes,
            "courier": sh.courier,
            "tracking_number": sh.tracking_number,
            "failure_reason": sh.failure_reason,
            "weight_g": sum(i["weight_g"] for i in kept),
            "shipping_fee": sum(i["shipping_fee"] for i in kept),
            "goods_total": sum(i["total"] for i in kept),
            "currency": currency.get(sh.id),
            "items": items[sh.id],
            "created_at": rfc3339(sh.created_at),
            "packed_at": rfc3339(sh.packed_at),
            "shipped_at": rfc3339(sh.shipped_at),
            "delivered_at": rfc3339(sh.delivered_at),
            "closed_at": rfc3339(sh.closed_at),
            "completes_at": rfc3339(completes),
        }
        if history:
            one["history"] = history_json(changes[sh.id])
        out.append(one)
    return out
