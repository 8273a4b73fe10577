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
    """(session, counter, stock) of every listing and running deal of a live session."""
    async with services.db.reader() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT l.session_id, l.id, l.stock FROM listings l"
                    " JOIN sessions s ON s.id = l.session_id WHERE s.status = 'live'"
                    " UNION ALL SELECT d.session_id, d.id, d.stock FROM flash_deals d"
                    " JOIN sessions s ON s.id = d.session_id"
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
    for session_id, inventory_id, stock in await _live_counters(services):
        if await inventory.remaining(services, session_id, inventory_id) is None:
            await inventory.rebuild(
                services, session_id=session_id, inventory_id=inventory_id, stock=stock
            )
            built += 1
    return built


# Long after a reservation ran out: its order was written, expired and released by now, or
# never landed (its request died between reserving and writing, or could not tell).
STALE_AFTER_S = 120


async def reconcile_holds(ctx: dict[str, Any]) -> int:
    """Cron: give back the units of holds whose reservation ran out long ago and whose
    order does not hold stock (it never landed, or its release was lost). Returns how many
    holds were given back."""
    services: Services = ctx["services"]
    before_ms = int((time.time() - STALE_AFTER_S) * 1000)
    released = 0
    for session_id, inventory_id, _ in await _live_counters(services):
        stale = await inventory.stale_holds(services, session_id, inventory_id, before_ms)
        if not stale:
            continue
        async with services.db.reader() as s:
            holding = set(
                await s.scalars(
                    select(Order.id).where(
                        Order.id == any_(cast(stale, ARRAY(String))),
                        Order.status == any_(cast([str(h) for h in HOLDS_STOCK], ARRAY(String))),
                    )
                )
            )
        stranded = set(stale) - holding
        for order_id in stranded:
            left = await inventory.release(
                services, session_id=session_id, inventory_id=inventory_id, order_id=order_id
            )
            if left >= 0:
                released += 1
                log.warning("gave back the stranded hold of %s", order_id)
        if stranded:
            await inventory.forget_keys_of(services, session_id, stranded)
    return released
