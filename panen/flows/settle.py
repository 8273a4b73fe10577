"""Settling paid orders: the ledger splits each sale, its pledge reaches the charity.

Settling picks paid orders with `FOR UPDATE SKIP LOCKED`, so several workers share the
work without waiting on each other, and does a whole batch in one transaction; a worker
killed halfway leaves an uncommitted transaction that PostgreSQL rolls back, and the next
run settles those orders once (each sale's ledger reference is unique besides).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Collection
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Select, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.ledger import service as ledger
from commerce.orders import lifecycle as orders
from commerce.orders.events import OrderPaid, sale_rows
from commerce.orders.lifecycle import OrderStatus
from commerce.orders.models import Order
from commerce.outbox import service as outbox
from commerce.payments.models import Payment
from commerce.shipping import service as shipping
from core.clock import rfc3339, utcnow
from core.db import is_transient
from core.events import Topical
from core.models import User
from core.services import Services
from donations.charity import sequencer
from donations.charity import service as charity
from donations.energy import earning as energy

BATCH = 200
SETTLE_JOB = "settle_orders"
SET_ASIDE = Counter(
    "panen_orders_set_aside", "Paid orders the database refused to settle (each a bug to look at)"
)
log = logging.getLogger("panen.flows.settle")


def sale_entries(order: Order, payment: Payment) -> list[ledger.Entry]:
    """How a sale's money splits: the buyer's payment to the charity, the farmer and us,
    and the postage to the farmer who ships it, on a line of its own (no share of it is a
    pledge or a fee)."""
    return [
        ledger.Entry(ledger.buyer_clearing(payment.provider), -(order.total + order.shipping_fee)),
        ledger.Entry(ledger.charity_payable(order.charity_id), order.pledge_amount),
        ledger.Entry(ledger.farmer_payable(order.farmer_id), order.farmer_amount),
        ledger.Entry(ledger.PLATFORM_FEE, order.fee_amount),
        ledger.Entry(ledger.farmer_payable(order.farmer_id), order.shipping_fee),
    ]


def _paid(limit: int, set_aside: Collection[str]) -> Select[Order, Payment, str]:
    """A batch of paid orders nobody else is settling, to be locked."""
    query = (
        select(Order, Payment, User.display_name)
        .join(Payment, Payment.order_id == Order.id)
        .join(User, User.id == Order.buyer_id)
        .where(Order.status == OrderStatus.PAID)
        .order_by(Order.paid_at)
        .limit(limit)
        .with_for_update(of=Order, skip_locked=True)
    )
    if set_aside:
        query = query.where(Order.id.not_in(list(set_aside)))
    return query


async def _settle(
    s: AsyncSession, limit: int, set_aside: Collection[str] = (), only: str | None = None
) -> int:
    # 1. Orders: a batch of paid ones nobody else is settling (or just `only`), locked.
    query = _paid(limit, set_aside)
    if only is not None:
        query = query.where(Order.id == only)
    rows = (await s.execute(query)).all()
    if not rows:
        return 0
    now = utcnow()
    at = rfc3339(now)
    await orders.move_many(s, [o for o, _, _ in rows], OrderStatus.PAID, OrderStatus.SETTLED, now)
    events: list[Topical] = []
    for order, _, display_name in rows:
        events += sale_rows(OrderPaid, order, at, display_name)
    # 2. Each into the box its farmer packs for its buyer (boxes after orders).
    events += await shipping.box(s, [o for o, _, _ in rows], now)
    # 3. Energy points for each purchase (the buyers' locks, all at once).
    events += await energy.for_purchases(
        s,
        [energy.Purchase(o.id, o.session_id, o.buyer_id, o.total, o.currency) for o, _, _ in rows],
        now,
    )
    # 4. The ledger: one balanced transaction per sale.
    await ledger.post_many(
        s, [("sale", f"sale:{o.id}", o.id, o.currency, sale_entries(o, p)) for o, p, _ in rows]
    )
    # 5. The charity's side: pledges, sponsor matches, rooms' sums, milestones …
    journal = charity.Journal()
    events += await charity.pledges_received(
        s,
        journal,
        [
            charity.Pledge(
                o.id, o.session_id, o.charity_id, o.buyer_id, o.pledge_amount, o.currency, now
            )
            for o, _, _ in rows
        ],
    )
    # 6. … and their entries, queued for the transparency log (sequenced after commit).
    await journal.write(s)
    # 7. The events, sent by the relay once this commits.
    await outbox.add(s, events)
    return len(rows)


async def settle_batch(services: Services, limit: int | None = None) -> int:
    """Settle up to `limit` (BATCH) paid orders in one transaction, then sequence their
    pledges' log entries; returns how many."""
    n = await _settle_batch(services, limit)
    if n:
        await sequencer.catch_up(services)
    return n


async def _settle_batch(services: Services, limit: int | None) -> int:
    """Settle up to `limit` (BATCH) paid orders in one transaction; returns how many.

    An order the database refuses to settle (a bug, or a value out of a column's range)
    must not hold back everyone else's: the batch is then settled one order at a time,
    and an order that fails alone is set aside in this process (logged as an error, and
    counted in `panen_orders_set_aside_total`) instead of failing every batch after it."""
    n = limit or BATCH
    aside: set[str] = services.shared("panen.flows.settle.set_aside", set)
    try:
        return await services.db.run(lambda s: _settle(s, n, aside))
    except DBAPIError as exc:
        if is_transient(exc):
            raise
        log.exception("a settlement batch failed; settling its orders one at a time")
    async with services.db.reader() as s:
        ids = [o.id for o, _, _ in (await s.execute(_paid(n, aside))).all()]
    done = 0
    for order_id in ids:
        try:
            done += await services.db.run(functools.partial(_settle, limit=1, only=order_id))
        except DBAPIError as exc:
            if is_transient(exc):
                raise
            aside.add(order_id)
            SET_ASIDE.inc()
            log.exception("order %s cannot be settled; set aside", order_id)
    return done


async def call_for_settlement(services: Services) -> None:
    """Ask some worker to settle: a webhook that paid an order calls this, and so does a
    settler that finds a backlog, so that idle workers join in. Calls within a quarter
    second coalesce into one job."""
    await services.enqueue(SETTLE_JOB, job_id=f"{SETTLE_JOB}:{int(time.time() * 4)}")


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
        # What settled is committed: a Redis blip now leaves its events to the relay's
        # cron, and does not make the job (which did its work) fail.
        await outbox.deliver(services)
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
    state = services.shared("panen.flows.settle.settlers", _Settlers)
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
                await call_for_settlement(services)  # a backlog: whoever is idle joins in
            elif state.again:
                state.again = False
            else:
                break
    finally:
        state.running -= 1
    if total:
        # What settled is committed: a Redis blip now leaves its events to the relay's
        # cron, and does not make the job (which did its work) fail.
        await outbox.deliver(services)
    return total


async def settle_orders(ctx: dict[str, Any]) -> int:
    """arq: settle what is paid (enqueued by payments and by settlers with a backlog)."""
    return await settle_as_job(ctx["services"])


async def settle_sweep(ctx: dict[str, Any]) -> int:
    """Cron: settles what a lost or crashed settlement job left paid."""
    return await settle_as_job(ctx["services"])
