"""A box on its way: packed, shipped, delivered, and then completed, or failed and refunded.

The farmer (or an admin) moves a shipment along; its buyer may confirm receipt, which
completes it at once; a delivered box completes by itself `PANEN_COMPLETE_AFTER_S` later
(`complete_due`, a cron). Completion is when the money becomes final: its orders become
`completed`, their pledges (and the matches they drew) may be spent by the charity, and
their farmer's share and postage may be paid out. A box that cannot be delivered (refused
at the door, lost, returned) fails: each of its orders is refunded as a host's refund is,
in one transaction, and the provider returns the money after it commits.

Locks, in the one order (docs/architecture.md): the box's orders (by id), their payments,
the box, then what a refund takes (points, ledger, charity funds, the log head last).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.catalog.models import Farmer
from commerce.orders import lifecycle as orders
from commerce.orders.lifecycle import OrderStatus
from commerce.orders.models import Order
from commerce.outbox import service as outbox
from commerce.payments import service as payments
from commerce.payments.models import Payment
from commerce.shipping import lifecycle
from commerce.shipping import service as shipping
from commerce.shipping.events import moved
from commerce.shipping.lifecycle import BY_BUYER, BY_FARMER, ShipmentStatus
from commerce.shipping.models import Shipment
from commerce.shipping.schemas import MoveShipment, ShipmentOut
from core.auth import Principal
from core.clock import utcnow
from core.errors import ApiError, bad_request, forbidden, not_found
from core.events import Topical
from core.services import Services
from donations.charity import sequencer
from donations.charity import service as charity
from panen.flows.refund import refund_locked

log = logging.getLogger("panen.flows")


@dataclass
class _Moved:
    refunds: list[str] = field(default_factory=list)  # payments to return after commit
    logged: list[str] = field(default_factory=list)  # log entries to sequence after commit


async def roles_in(services: Services, principal: Principal, shipment: Shipment) -> set[str]:
    """What the caller is to this box: its `farmer` (or an admin), its `buyer` (a farmer
    who bought their own produce is both), or nothing (it answers 404)."""
    roles = {"farmer"} if principal.is_admin else set()
    if shipment.buyer_id == principal.user_id:
        roles.add("buyer")
    if "farmer" not in roles:
        async with services.db.reader() as s:
            owner = await s.scalar(select(Farmer.user_id).where(Farmer.id == shipment.farmer_id))
        if owner == principal.user_id:
            roles.add("farmer")
    return roles


async def read(services: Services, shipment_id: str) -> ShipmentOut:
    async with services.db.reader() as s:
        shipment = await s.get(Shipment, shipment_id)
        assert shipment is not None
        [out] = await shipping.describe(
            s, [shipment], services.settings.complete_after_s, history=True
        )
    return out


async def move_shipment(
    services: Services, principal: Principal, shipment_id: str, body: MoveShipment
) -> ShipmentOut:
    """Move a box along; moving it to where it already is changes nothing."""
    async with services.db.reader() as s:
        shipment = await s.get(Shipment, shipment_id)
    roles = set() if shipment is None else await roles_in(services, principal, shipment)
    if shipment is None or not roles:
        raise not_found("shipment", shipment_id)
    to = ShipmentStatus(body.status)
    if to in BY_BUYER and "buyer" not in roles and not principal.is_admin:
        raise forbidden("its buyer confirms receipt; the farmer marks it delivered")
    if to in BY_FARMER and "farmer" not in roles:
        raise forbidden("a buyer may only confirm that the box arrived (completed)")
    if to == ShipmentStatus.SHIPPED:
        for name in ("courier", "tracking_number"):
            if getattr(body, name) is None:
                raise bad_request("missing_field", f"{name} is required to ship", name)
    by = principal.user_id
    if to == ShipmentStatus.COMPLETED:
        work = functools.partial(_complete, shipment_id=shipment_id, by=by, note="received")
    elif to == ShipmentStatus.FAILED:
        reason = body.reason or "not delivered"
        work = functools.partial(_fail, shipment_id=shipment_id, by=by, reason=reason)
    else:
        work = functools.partial(_advance, shipment_id=shipment_id, to=to, by=by, body=body)
    done = await _run(services, work)
    await _after_commit(services, done)
    return await read(services, shipment_id)


async def _advance(
    s: AsyncSession, shipment_id: str, to: ShipmentStatus, by: str, body: MoveShipment
) -> _Moved:
    shipment = await shipping.lock(s, shipment_id)
    assert shipment is not None
    if shipment.status == to and to != ShipmentStatus.SHIPPED:
        return _Moved()
    now = utcnow()
    if to == ShipmentStatus.SHIPPED:
        if shipment.status == to:  # a corrected tracking number
            lifecycle.note(s, shipment, now, by, "tracking number corrected")
        else:
            lifecycle.move(s, shipment, to, now, by)
        shipment.courier, shipment.tracking_number = body.courier, body.tracking_number
    else:
        lifecycle.move(s, shipment, to, now, by)
    ids = await shipping.order_ids_in(s, shipment_id, [OrderStatus.SETTLED])
    await outbox.add(s, moved(shipment, ids, now))
    return _Moved()


class _BoxChanged(Exception):
    """A sale settled into the box between reading its orders and locking it."""


@dataclass
class _Box:
    shipment: Shipment
    orders: list[Order]  # its settled orders, locked
    payments: dict[str, Payment | None]  # theirs, locked (when asked for)


async def _lock_box(s: AsyncSession, shipment_id: str, payments_too: bool = False) -> _Box:
    """The box's settled orders (in id order), their payments, then the box: the lock order.
    A sale that settles into the box meanwhile (settling locks its order, then the box)
    commits before the box's lock is ours; its orders are read again under that lock, and
    if one was missed the transaction starts over (`_run`), so none is left behind."""
    ids = await shipping.order_ids_in(s, shipment_id, [OrderStatus.SETTLED])
    rows: list[Order] = []
    if ids:
        rows = list(
            await s.scalars(
                select(Order)
                .where(Order.id.in_(ids))
                .order_by(Order.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        )
    orders = [o for o in rows if o.status == OrderStatus.SETTLED and o.shipment_id == shipment_id]
    paid = {o.id: await payments.lock_of_order(s, o.id) for o in orders} if payments_too else {}
    shipment = await shipping.lock(s, shipment_id)
    assert shipment is not None
    now_in = await shipping.order_ids_in(s, shipment_id, [OrderStatus.SETTLED])
    if set(now_in) - {o.id for o in orders}:
        raise _BoxChanged(shipment_id)
    return _Box(shipment, orders, paid)


async def _run(services: Services, work: Callable[[AsyncSession], Awaitable[_Moved]]) -> _Moved:
    """`work` in one transaction, from the start again if its box changed under it."""
    for _ in range(10):
        try:
            return await services.db.run(work)
        except _BoxChanged:
            continue
    raise ApiError(503, "busy", "the box keeps changing; retry", headers={"Retry-After": "1"})


async def _complete(s: AsyncSession, shipment_id: str, by: str | None, note: str) -> _Moved:
    # 1. Its orders, then the box.
    box = await _lock_box(s, shipment_id)
    shipment, kept = box.shipment, box.orders
    if shipment.status == ShipmentStatus.COMPLETED:
        return _Moved()
    now = utcnow()
    lifecycle.move(s, shipment, ShipmentStatus.COMPLETED, now, by, note)
    # 2. The orders are final: their farmer's share may be paid out …
    await orders.move_many(s, kept, OrderStatus.SETTLED, OrderStatus.COMPLETED, now, note)
    # 3. … and their pledges spent.
    await charity.pledges_kept(s, [o.id for o in kept])
    await outbox.add(s, moved(shipment, [o.id for o in kept], now))
    return _Moved()


async def _fail(s: AsyncSession, shipment_id: str, by: str, reason: str) -> _Moved:
    # 1. Its orders, their payments, then the box.
    box = await _lock_box(s, shipment_id, payments_too=True)
    shipment, lost, paid = box.shipment, box.orders, box.payments
    if shipment.status == ShipmentStatus.FAILED:
        return _Moved()
    now = utcnow()
    lifecycle.move(s, shipment, ShipmentStatus.FAILED, now, by, reason)
    shipment.failure_reason = reason
    # 2. Each order refunded as a host's refund is; one journal, queued for the log.
    done, events = _Moved(), list[Topical]()
    journal = charity.Journal()
    for order in lost:
        undone = await refund_locked(
            s, journal, order, paid[order.id], now, f"refunded: {reason}", leave_box=False
        )
        events += [outbox.release_row(order), *undone.events]
        done.refunds += undone.refunds
    done.logged = await journal.write(s)
    await outbox.add(s, [*events, *moved(shipment, [o.id for o in lost], now)])
    return done


async def _after_commit(services: Services, done: _Moved) -> None:
    """The provider returns the money (or its sweeper does), the relay tells everyone."""
    try:
        await payments.execute_refunds(services, done.refunds)
    except Exception:
        log.warning("refunds of a failed delivery left to the sweeper", exc_info=True)
    sequencer.soon(services, done.logged)
    await outbox.deliver(services)


async def complete_due(services: Services, limit: int = 200) -> int:
    """Complete the boxes delivered longer ago than the buyer's window; returns how many."""
    since = utcnow() - timedelta(seconds=services.settings.complete_after_s)
    async with services.db.reader() as s:
        due = list(
            await s.scalars(
                select(Shipment.id)
                .where(
                    Shipment.status == ShipmentStatus.DELIVERED,
                    Shipment.delivered_at <= since,
                )
                .order_by(Shipment.delivered_at)
                .limit(limit)
            )
        )
    for shipment_id in due:
        try:
            await _run(
                services,
                functools.partial(
                    _complete, shipment_id=shipment_id, by=None, note="completed after delivery"
                ),
            )
        except ApiError:  # failed (returned) since it was read: nothing to complete
            log.info("shipment %s moved on before it could complete", shipment_id)
    if due:
        await outbox.deliver(services)
    return len(due)


async def complete_deliveries(ctx: dict[str, Any]) -> int:
    """arq cron: delivered boxes whose buyers did not complain complete."""
    return await complete_due(ctx["services"])
