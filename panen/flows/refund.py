"""Cancelling an order, or refunding it after payment.

Its buyer may cancel before payment; its host or an admin may cancel or refund at any
time. Stock returns either way. A refund of a settled order reverses what settling did, in
the same order: its energy points, its ledger transaction, its pledge and the matches it
drew, the log; the provider returns the money after the transaction commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from commerce.ledger import service as ledger
from commerce.orders import lifecycle as orders
from commerce.orders import service as order_service
from commerce.orders.events import Refund, buyer_row, sale_rows
from commerce.orders.lifecycle import OrderStatus
from commerce.orders.schemas import OrderOut
from commerce.outbox import service as outbox
from commerce.payments import lifecycle as payment_lifecycle
from commerce.payments import service as payments
from commerce.payments.lifecycle import PaymentStatus
from commerce.sessions.models import LiveSession
from core.auth import Principal
from core.clock import rfc3339, utcnow
from core.errors import conflict, forbidden, not_found
from core.events import Topical
from core.services import Services
from donations.charity import service as charity
from donations.energy import earning as energy
from panen.flows.settle import sale_entries

log = logging.getLogger("panen.flows")


@dataclass
class _Done:
    order: OrderOut | None = None  # as it is once the change committed
    refunds: list[str] = field(default_factory=list)  # payments to return after commit


async def _cancel(s: AsyncSession, principal: Principal, order_id: str) -> _Done:
    done = _Done()
    # 1. The order, locked; who may touch it (its session read on this same connection).
    order = await order_service.lock(s, order_id)
    if order is None:
        raise not_found("order", order_id)
    live = await s.get(LiveSession, order.session_id)
    is_staff = principal.is_admin or (live is not None and principal.user_id == live.host_id)
    if not (is_staff or order.buyer_id == principal.user_id):
        raise forbidden("only its buyer, its host or an admin may cancel this order")
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
        was_counted = order.status == OrderStatus.SETTLED
        if was_counted:
            # 3. What settling did, undone in its order: energy points …
            events += await energy.purchase_refunded(s, order.id, now)
            # 4. … the sale's ledger transaction …
            assert payment is not None
            await ledger.post(
                s,
                "refund",
                f"refund:{order.id}",
                order.currency,
                ledger.reversed_entries(sale_entries(order, payment)),
                order_id=order.id,
            )
            # 5. … the pledge and its matches (409 if the charity already spent it) …
            journal = charity.Journal()
            events += await charity.pledge_reversed(s, journal, order.id, order.session_id, now)
            # 6. … and the log, last.
            await journal.write(s)
        await orders.move(s, order, OrderStatus.REFUNDED, now, f"refunded {note}")
        if payment is not None and payment.status == PaymentStatus.SUCCEEDED:
            await payments.refund(s, payment, now)
            done.refunds.append(payment.id)
        # The totals counted the sale only once it settled: only then do they drop it.
        at = rfc3339(now)
        events += sale_rows(Refund, order, at) if was_counted else [buyer_row(Refund, order, at)]
    await outbox.add(s, events)
    await s.flush()
    done.order = await _read(s, order_id)
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
    await outbox.deliver(services)
    assert done.order is not None
    return done.order


async def _read(s: AsyncSession, order_id: str) -> OrderOut:
    found = await order_service.load_order(s, order_id)
    assert found is not None
    return found
