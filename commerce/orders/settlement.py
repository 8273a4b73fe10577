"""TEMP"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import String, any_, cast, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from commerce import hooks
from commerce.ledger import service as ledger
from commerce.orders.models import Order, OrderStatusChange
from commerce.orders.refunds import sale_entries, sale_event
from commerce.outbox import service as outbox
from commerce.payments import service as payments
from commerce.payments.models import Payment
from core.clock import rfc3339, utcnow
from core.models import User
from core.services import Services

log = logging.getLogger("panen.settlement")


BATCH = 200


def _any_of(ids: list[str]) -> Any:
    """`= ANY(array)`: one prepared statement whatever the batch's size (IN (…) is one per
    size)."""
    return any_(cast(ids, ARRAY(String)))


async def _update_orders(s: AsyncSession, ids: list[str], **values: Any) -> None:
    await s.execute(
        update(Order)
        .where(Order.id == _any_of(ids))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def settle_batch(services: Services, limit: int | None = None) -> int:
    """Settle up to `limit` (BATCH) paid orders in one transaction; returns how many."""
    limit = limit or BATCH
    async with services.db.transaction() as s:
        rows = (
            await s.execute(
                select(Order, Payment, User.display_name)
                .join(Payment, Payment.order_id == Order.id)
                .join(User, User.id == Order.buyer_id)
                .where(Order.status == "paid")
                .order_by(Order.paid_at)
                .limit(limit)
                .with_for_update(of=Order, skip_locked=True)
            )
        ).all()
        if not rows:
            return 0
        now = utcnow()
        at = rfc3339(now)
        txns: list[tuple[str, str, str | None, str, list[ledger.Entry]]] = []
        events: list[tuple[str, dict[str, Any]]] = []
        for order, payment, display_name in rows:
            txns.append(
                ("sale", f"sale:{order.id}", order.id, order.currency, sale_entries(order, payment))
            )
            paid = {**sale_event("order_paid", order, at), "display_name": display_name}
            farmer = {**paid, "fee": order.fee_amount, "farmer_amount": order.farmer_amount}
            events += [
                (f"session:{order.session_id}", paid),
                (f"farmer:{order.farmer_id}", farmer),
                (f"me:{order.buyer_id}", {**paid, "status": "settled"}),
            ]
        await ledger.post_many(s, txns)
        ids = [order.id for order, _, _ in rows]
        await _update_orders(s, ids, status="settled", settled_at=now)
        await s.execute(
            text(
                "INSERT INTO order_status_history (order_id, status, at)"
                " SELECT unnest(CAST(:ids AS varchar[])), 'settled', :at"
            ),
            {"ids": ids, "at": now},
        )
        # Whoever rewards a purchase (energy points) does so in this transaction too.
        events += await hooks.orders_moved(
            s,
            [
                hooks.OrderMovement(
                    "settled", o.id, o.session_id, o.buyer_id, o.total, o.currency, now
                )
                for o, _, _ in rows
            ],
        )
        await outbox.add(s, events)
        # The charity's side (its funds, matches, the transparency log) comes last: it takes
        # the log's head lock and the room's totals row, which concurrent batches share and
        # which are held until commit, so as little as possible should follow them.
        events = await hooks.pledges_moved(
            s,
            [
                hooks.PledgeMovement(
                    "pledge",
                    o.id,
                    o.session_id,
                    o.charity_id,
                    o.buyer_id,
                    o.pledge_amount,
                    o.currency,
                    now,
                )
                for o, _, _ in rows
                if o.pledge_amount > 0
            ],
        )
        await outbox.add(s, events)
    return len(rows)


# Batches a process settles at once: while one waits on PostgreSQL another builds its
# rows, and SKIP LOCKED gives each its own orders.
SETTLERS = 2


async def settle_all(services: Services, settlers: int = SETTLERS) -> int:
    """Settle every order paid by now; returns how many."""

    async def settler() -> int:
        done = 0
        while True:
            n = await settle_batch(services)
            done += n
            if n < BATCH:
                return done

    total = sum(await asyncio.gather(*(settler() for _ in range(settlers))))
    if total:
        await outbox.relay(services)
    return total


class _Settlers:
    """A worker's settlement jobs running now, and whether a job was turned away."""

    def __init__(self) -> None:
        self.running = 0
        self.again = False


async def settle_as_job(services: Services) -> int:
    """One settler: batch after batch until the paid orders run out. A worker runs at most
    SETTLERS at once; a job beyond that leaves the work to them (asking them to look once
    more before they stop, so an order paid at that moment is not left waiting)."""
    state = services.shared("commerce.settlement.settlers", _Settlers)
    if state.running >= SETTLERS:
        state.again = True
        return 0
    state.running += 1
    total = 0
    try:
        while True:
            n = await settle_batch(services)
            total += n
            if n == BATCH:
                await payments.call_for_settlement(services)  # a backlog: whoever is idle joins in
            elif state.again:
                state.again = False
            else:
                break
    finally:
        state.running -= 1
    if total:
        await outbox.relay(services)
    return total


async def expire_reservations(services: Services, limit: int = 500) -> int:
    """Reserved orders past their expiry become expired; their stock goes back (via the
    outbox, so a crash between commit and release cannot lose it)."""
    async with services.db.transaction() as s:
        orders = (
            (
                await s.execute(
                    select(Order)
                    .where(Order.status == "reserved", Order.expires_at < utcnow())
                    .order_by(Order.expires_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        if not orders:
            return 0
        now = utcnow()
        ids = [o.id for o in orders]
        await _update_orders(s, ids, status="expired", closed_at=now)
        await s.execute(
            update(Payment)
            .where(Payment.order_id == _any_of(ids), Payment.status == "pending")
            .values(status="cancelled", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        s.add_all(
            [OrderStatusChange(order_id=i, status="expired", note="not paid in time") for i in ids]
        )
        await outbox.add(
            s,
            [outbox.release_row(o.session_id, o.inventory_id, o.listing_id, o.id) for o in orders],
        )
    await outbox.relay(services)
    return len(orders)


async def settle_orders(ctx: dict[str, Any]) -> int:
    return await settle_as_job(ctx["services"])


async def settle_sweep(ctx: dict[str, Any]) -> int:
    """Cron: settles what a lost or crashed settlement job left paid."""
    return await settle_as_job(ctx["services"])


async def expire_job(ctx: dict[str, Any]) -> int:
    services: Services = ctx["services"]
    n = 0
    while True:
        got = await expire_reservations(services)
        n += got
        if got < 500:
            return n


async def relay_job(ctx: dict[str, Any]) -> int:
    return await outbox.relay(ctx["services"])
