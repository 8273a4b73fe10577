"""Background jobs of stock counters."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from sqlalchemy import String, any_, cast, select, text
from sqlalchemy.dialects.postgresql import ARRAY

from commerce.orders.lifecycle import HOLDS_STOCK
from commerce.orders.models import Order
from commerce.stock import service as inventory
from core.services import Services

log = logging.getLogger("panen.stock")


async def _live_counters(services: Services, *, ended_deals: bool = False) -> list[Any]:
    """(session_id, id, stock, listing_id, deal_id, running) of every listing and running
    deal of a live session (and its ended deals, if asked): each has a stock counter,
    whose id is the listing's or the deal's."""
    async with services.db.reader() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT l.session_id, l.id, l.stock, l.id AS listing_id, NULL AS deal_id,"
                    " true AS running FROM listings l JOIN sessions s ON s.id = l.session_id"
                    " WHERE s.status = 'live'"
                    " UNION ALL SELECT d.session_id, d.id, d.stock, d.listing_id, d.id,"
                    " d.ends_at > now() FROM flash_deals d JOIN sessions s ON s.id = d.session_id"
                    " WHERE s.status = 'live' AND (:ended OR d.ends_at > now())"
                ),
                {"ended": ended_deals},
            )
        ).all()
    return list(rows)


async def warm_counters(ctx: dict[str, Any]) -> int:
    """At start and then each minute: build the stock counters of live sessions that
    Redis does not hold (a fresh or wiped Redis), before the first buyer has to wait."""
    services: Services = ctx["services"]
    built = 0
    for session_id, inventory_id, stock, *_ in await _live_counters(services):
        if await inventory.remaining(services, session_id, inventory_id) is None:
            await inventory.rebuild(
                services, session_id=session_id, inventory_id=inventory_id, stock=stock
            )
            built += 1
    return built


# A request reserves and then writes its order within milliseconds, or seconds when the
# database is slow. A hold whose order is not in the database this long after its id was
# made belongs, all but surely, to a request that died in between (a killed web process):
# its counter is recounted, which is exact whatever the request does next. The id's time
# is from the web process's clock, read against the worker's: a skew of seconds only
# shifts when; a web clock far behind would recount busy counters needlessly (still
# exact, but their orders in flight are refused and reserve again).
ORPHANED_AFTER_S = 30
# Within the cron's timeout (25 s), whatever one counter does.
COUNTER_BUDGET_S = 8


async def reconcile_holds(ctx: dict[str, Any]) -> int:
    """Cron: give back the units held for orders that do not hold stock. Returns how many
    holds were given back.

    - An order that never landed (its request died between reserving and writing): its
      counter is recounted from the database under a new generation. Giving the hold back
      alone could not be made safe: the request may be alive but slow, and its order would
      then land on top of units already sold again. A new generation makes that order's
      write fail instead (see `inventory.recount`), and the request, if alive, reserves
      afresh.
    - An order that landed and is no longer holding (expired, cancelled, refunded: each is
      final) whose release was lost: its hold is given back, which is idempotent.

    The idempotency records of orders that never landed are dropped, so that the buyer's
    resend with the same key is served afresh rather than held up (should that be lost, a
    resend finds it out: `orders.service._prior_is_dead`)."""
    services: Services = ctx["services"]
    before_ms = int((time.time() - ORPHANED_AFTER_S) * 1000)
    released = 0
    # A deal's counter too once it ended: a key whose request died there stays held up
    # until its counter is recounted.
    counters = await _live_counters(services, ended_deals=True)
    # A counter that cannot be recounted now (its rebuild lock held, the database slow)
    # costs at most its budget, and does not always come first.
    random.shuffle(counters)
    for counter in counters:
        try:
            async with asyncio.timeout(COUNTER_BUDGET_S):
                released += await _reconcile(services, counter, before_ms)
        except TimeoutError:
            log.warning("reconciling the holds of %s took too long; next run", counter.id)
        except Exception:
            log.exception("reconciling the holds of %s failed", counter.id)
    return released


async def _orders_in(services: Services, ids: list[str]) -> dict[str, str]:
    """order id -> status, for those of `ids` that are in the database."""
    async with services.db.reader() as s:
        rows = await s.execute(
            select(Order.id, Order.status).where(Order.id == any_(cast(ids, ARRAY(String))))
        )
        return {order_id: str(status) for order_id, status in rows.all()}


async def _reconcile(services: Services, counter: Any, before_ms: int) -> int:
    session_id, inventory_id = counter.session_id, counter.id
    old = await inventory.holds_made_before(services, session_id, inventory_id, before_ms)
    if not old:
        return 0
    status = await _orders_in(services, old)
    released = 0
    if any(o not in status for o in old):
        # The recount drops every hold whose order does not hold stock: these, and any
        # other request's that died or will now be refused.
        dropped = await inventory.recount(
            services, session_id=session_id, inventory_id=inventory_id, stock=counter.stock
        )
        released += len(dropped)
        log.warning("recounted %s: dropped the holds of %s", inventory_id, sorted(dropped))
        # Those whose orders are not in the database now never will be (the recount moved
        # past their generation): their keys are forgotten, so that a resend is served
        # afresh. A landed order's key stays: a resend is answered with that order.
        landed = await _orders_in(services, dropped) if dropped else {}
        await inventory.forget_keys_of(
            services, session_id, {o for o in dropped if o not in landed}
        )
    for order_id, st in status.items():
        if st in HOLDS_STOCK:
            continue
        left = await inventory.release(
            services, session_id=session_id, inventory_id=inventory_id, order_id=order_id
        )
        if left >= 0:
            released += 1
            log.warning("gave back the hold of %s, which no longer holds stock", order_id)
    if released and counter.running:  # an ended deal's stock is offered no more
        remaining = await inventory.remaining(services, session_id, inventory_id)
        if remaining is not None:
            await inventory.announce_left(
                services, session_id, counter.listing_id, counter.deal_id, remaining
            )
    return released
