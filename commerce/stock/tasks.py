"""Background jobs of stock counters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from commerce.stock import service as inventory
from core.services import Services


async def warm_counters(ctx: dict[str, Any]) -> int:
    """At start and then each minute: build the stock counters of live sessions that
    Redis does not hold (a fresh or wiped Redis), before the first buyer has to wait."""
    services: Services = ctx["services"]
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
    built = 0
    for session_id, inventory_id, stock in rows:
        if await inventory.remaining(services, session_id, inventory_id) is None:
            await inventory.rebuild(
                services, session_id=session_id, inventory_id=inventory_id, stock=stock
            )
            built += 1
    return built
