"""Reservations nobody paid for in time: the order expires, its payment is closed, its
stock goes back (through the outbox, so a crash between commit and release cannot lose
it). A payment that lands afterwards is returned (`payment`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.orders import lifecycle as orders
from commerce.orders.lifecycle import OrderStatus
from commerce.orders.models import Order
from commerce.outbox import service as outbox
from commerce.payments import lifecycle as payments
from commerce.payments.lifecycle import PaymentStatus
from commerce.payments.models import Payment
from core.clock import utcnow
from core.services import Services

BATCH = 500


async def _expire(s: AsyncSession, limit: int) -> int:
    now = utcnow()
    # 1. Orders past their time, locked (skipping those a payment or a cancel holds).
    due = (
        (
            await s.execute(
                select(Order)
                .where(Order.status == OrderStatus.RESERVED, Order.expires_at < now)
                .order_by(Order.expires_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    if not due:
        return 0
    await orders.move_many(
        s, due, OrderStatus.RESERVED, OrderStatus.EXPIRED, now, "not paid in time"
    )
    # 2. Their payments, after them in the lock order.
    pending = await s.scalars(
        select(Payment.id).where(
            Payment.order_id.in_([o.id for o in due]), Payment.status == PaymentStatus.PENDING
        )
    )
    await payments.move_many(s, list(pending), PaymentStatus.PENDING, PaymentStatus.CANCELLED, now)
    # 3. The stock, given back once this commits.
    await outbox.add(s, [outbox.release_row(o) for o in due])
    return len(due)


async def expire_reservations(services: Services, limit: int = BATCH) -> int:
    """Expire up to `limit` unpaid reservations in one transaction; returns how many."""
    n = await services.db.run(lambda s: _expire(s, limit))
    if n:
        await outbox.deliver(services)
    return n


async def expire_job(ctx: dict[str, Any]) -> int:
    """Cron: every reservation past its time, batch by batch."""
    services: Services = ctx["services"]
    n = 0
    while True:
        got = await expire_reservations(services)
        n += got
        if got < BATCH:
            return n
