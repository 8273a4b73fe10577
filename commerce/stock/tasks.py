"""Background jobs of stock counters."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import String, any_, cast, select, text
from sqlalchemy.dialects.postgresql import ARRAY

from commerce.orders.lifecycle import HOLDS_STOCK
from commerce.orders.models import Order
from commerce.stock import service as inventory
from core.services import Services

log = logging.getLogger("panen.stock")


async def _live_counters(services: Services) -> list[Any]:
    """(session_id, id, stock, listing_id, deal_id) of every listing and running deal of a
    live session: each has a stock counter, whose id is the listing's or the deal's."""
    async with services.db.reader() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT l.session_id, l.id, l.stock, l.id AS listing_id, NULL AS deal_id"
                    " FROM listings l JOIN sessions s ON s.id = l.session_id"
                    " WHERE s.status = 'live'"
                    " UNION ALL SELECT d.session_id, d.id, d.stock, d.listing_id, d.id"
                    " FROM flash_deals d JOIN sessions s ON s.id = d.session_id"
                    " WHERE s.status = 'live' AND d.ends_at > now()"
                )
            )
        ).all()
    return list(rows)


async def warm_counters(ctx: dict[str, Any]) -> int:
    """At start and then each minute: build the stock counters of live sessions that
    Redis does not hold (a fresh or wiped Redis), before the first buyer has to wait."""
    services: Services = ctx["services"]
    built = 0
    for session_id, inventory_id, stock, _, _ in await _live_counters(services):
        if await inventory.remaining(services, session_id, inventory_id) is None:
            await inventory.rebuild(
                services, session_id=session_id, inventory_id=inventory_id, stock=stock
            )
            built += 1
    return built


# A request reserves and then writes its order within milliseconds, or seconds when the
# database is slow. A hold whose order is not in the database this long after its id was
# made belongs, all but surely, to a request that died in between (a killed web process):
# its counter is recounted, which is exact whatever the request does next.
ORPHANED_AFTER_S = 30


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

    Either way the idempotency records naming those orders are dropped, so that the
    buyer's resend with the same key is served afresh rather than held up."""
    services: Services = ctx["services"]
    before_ms = int((time.time() - ORPHANED_AFTER_S) * 1000)
    released = 0
    for counter in await _live_counters(services):
        try:
            released += await _reconcile(services, counter, before_ms)
        except Exception:  # one counter's trouble (a lock held too long) spares the rest
            log.exception("reconciling the holds of %s failed", counter.id)
    return released


async def _reconcile(services: Services, counter: Any, before_ms: int) -> int:
    session_id, inventory_id = counter.session_id, counter.id
    old = await inventory.holds_made_before(services, session_id, inventory_id, before_ms)
    if not old:
        return 0
    async with services.db.reader() as s:
        status = dict(
            (
                await s.execute(
                    select(Order.id, Order.status).where(Order.id == any_(cast(old, ARRAY(String))))
                )
            ).all()
        )
    never_landed = {o for o in old if o not in status}
    let_go = {o for o, st in status.items() if st not in HOLDS_STOCK}
    released = 0
    if never_landed:
        await inventory.recount(
            services, session_id=session_id, inventory_id=inventory_id, stock=counter.stock
        )
        released += len(never_landed)
        log.warning("recounted %s: no order landed for holds %s", inventory_id, never_landed)
    for order_id in let_go:
        left = await inventory.release(
            services, session_id=session_id, inventory_id=inventory_id, order_id=order_id
        )
        if left >= 0:
            released += 1
            log.warning("gave back the hold of %s, which no longer holds stock", order_id)
    if never_landed or let_go:
        await inventory.forget_keys_of(services, session_id, never_landed | let_go)
        remaining = await inventory.remaining(services, session_id, inventory_id)
        if remaining is not None:
            await inventory.announce_left(
                services, session_id, counter.listing_id, counter.deal_id, remaining
            )
    return released
