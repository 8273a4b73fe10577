"""Cancelling an order, or refunding it after payment.

Its buyer may cancel before payment; its host or an admin may cancel or refund it until it
completes. Stock returns either way. A refund of a settled order reverses what settling
did, in the same order: its energy points, its ledger transaction, its pledge and the
matches it drew, the log; the provider returns the money after the transaction commits.
A box that loses its last order before it ships is cancelled. (A failed delivery refunds
every order of its box the same way: `panen.flows.delivery`.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from commerce.ledger import service as ledger
from commerce.orders import lifecycle as orders
from commerce.orders import service as order_service
from commerce.orders.events import Refund, buyer_row, sale_rows
from commerce.orders.lifecycle import COUNTED, OrderStatus
from commerce.orders.models import Order
from commerce.orders.schemas import OrderOut
from commerce.outbox import service as outbox
from commerce.payments import lifecycle as payment_lifecycle
from commerce.payments import service as payments
from commerce.payments.lifecycle import PaymentStatus
from commerce.payments.models import Payment
from commerce.sessions.models import LiveSession
from commerce.shipping import lifecycle as shipping_lifecycle
from commerce.shipping import service as shipping
from commerce.shipping.events import moved
from commerce.shipping.lifecycle import ShipmentStatus
from core.auth import Principal
from core.clock import rfc3339, utcnow
from core.errors import conflict, not_found
from core.events import Topical
from core.services import Services
from donations.charity import sequencer
from donations.charity import service as charity
from donations.energy import earning as energy
from panen.flows.settle import sale_entries

log = logging.getLogger("panen.flows")


@dataclass
class _Done:
    order: OrderOut | None = None  # as it is once the change committed
    refunds: list[str] = field(default_factory=list)  # payments to return after commit
    logged: list[str] = field(default_factory=list)  # log entries to sequence after commit


async def _cancel(s: AsyncSession, principal: Principal, order_id: str) -> _Done:
    done = _Done()
    # 1. The order, locked; who may touch it (its session read on this same connection).
    order = await order_service.lock(s, order_id)
    if order is None:
        raise not_found("order", order_id)
    live = await s.get(LiveSession, order.session_id)
    is_staff = principal.is_admin or (live is not None and principal.user_id == live.host_id)
    if not (is_staff or order.buyer_id == principal.user_id):
        # Those who may read an order are those who may cancel it: to anyone else it does
        # not exist (a 403 would tell them it does).
        raise not_found("order", order_id)
    if order.status == OrderStatus.COMPLETED:
        raise conflict(
            "order_completed",
            "this order was delivered and completed; it can no longer be refunded",
            status=order.status,
        )
    if order.status in orders.ORDER.final:  # cancelling twice is harmless
        done.order = await _read(s, order_id)
        return done
    if order.status != OrderStatus.RESERVED and not is_staff:
        raise conflict(
            "already_paid",
            "a paid order can only be refunded by the host or an admin",
            status=order.status,
        )
    # 2. Its payment, after it.
    payment = await payments.lock_of_order(s, order.id)
    now, note = utcnow(), f"by {principal.user_id}"
    events: list[Topical] = [outbox.release_row(order)]
    if order.status == OrderStatus.RESERVED:
        await orders.move(s, order, OrderStatus.CANCELLED, now, f"cancelled {note}")
        if payment is not None and payment.status == PaymentStatus.PENDING:
            payment_lifecycle.move(payment, PaymentStatus.CANCELLED, now)
    else:
        journal = charity.Journal()
        undone = await refund_locked(s, journal, order, payment, now, f"refunded {note}")
        # … and its entries, queued for the log.
        done.logged = await journal.write(s)
        events += undone.events
        done.refunds += undone.refunds
    await outbox.add(s, events)
    await s.flush()
    done.order = await _read(s, order_id)
    return done


@dataclass
class Undone:
    events: list[Topical] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)  # payments to return after commit


async def refund_locked(
    s: AsyncSession,
    journal: charity.Journal,
    order: Order,
    payment: Payment | None,
    now: datetime,
    note: str,
    *,
    leave_box: bool = True,
) -> Undone:
    """Refund a paid or settled order, locked with its payment: what settling did is undone
    in its order; the caller writes the journal (the log, last) and returns the money after
    commit. An order leaving a box still being packed cancels the box if nothing is left in
    it (`leave_box`; a failed delivery moves its box itself)."""
    done = Undone()
    # 3. Its box, after its payment in the lock order.
    box = None
    if leave_box and order.shipment_id is not None:
        box = await shipping.lock(s, order.shipment_id)
    was_counted = order.status == OrderStatus.SETTLED
    if was_counted:
        # 4. What settling did, undone in its order: energy points …
        done.events += await energy.purchase_refunded(s, order.id, now)
        # 5. … the sale's ledger transaction …
        assert payment is not None
        await ledger.post(
            s,
            "refund",
            f"refund:{order.id}",
            order.currency,
            ledger.reversed_entries(sale_entries(order, payment)),
            order_id=order.id,
        )
        # 6. … the pledge and its matches (409 if the charity already spent it); the
        # caller's journal logs the reversal.
        done.events += await charity.pledge_reversed(s, journal, order.id, order.session_id, now)
    await orders.move(s, order, OrderStatus.REFUNDED, now, note)
    if payment is not None and payment.status == PaymentStatus.SUCCEEDED:
        await payments.refund(s, payment, now)
        done.refunds.append(payment.id)
    # The totals counted the sale only once it settled: only then do they drop it.
    at = rfc3339(now)
    done.events += sale_rows(Refund, order, at) if was_counted else [buyer_row(Refund, order, at)]
    unshipped = box is not None and box.status in (ShipmentStatus.PACKING, ShipmentStatus.PACKED)
    if box is not None and unshipped and not await shipping.order_ids_in(s, box.id, COUNTED):
        shipping_lifecycle.move(
            s, box, ShipmentStatus.CANCELLED, now, None, "every order in it was refunded"
        )
        done.events += moved(box, [order.id], now)
    return done


async def cancel_order(services: Services, principal: Principal, order_id: str) -> OrderOut:
    """Cancel or refund; returns the order as it is now."""
    done = await services.db.run(lambda s: _cancel(s, principal, order_id))
    # After the commit, never inside it: the provider returns the money, the relay tells
    # the rooms and gives the stock back.
    try:
        if await payments.execute_refunds(services, done.refunds):
            async with services.db.reader() as s:
                done.order = await _read(s, order_id)
    except Exception:  # the refund sweeper returns the money; the refund stands
        log.warning("refund of %s left to the sweeper", order_id, exc_info=True)
    sequencer.soon(services, done.logged)
    await outbox.deliver(services)
    assert done.order is not None
    return done.order


async def _read(s: AsyncSession, order_id: str) -> OrderOut:
    found = await order_service.load_order(s, order_id)
    assert found is not None
    return found
