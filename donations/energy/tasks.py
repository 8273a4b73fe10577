"""Background jobs of energy points: a web process's minute of watching and liking, and
the expiry sweep. Both are idempotent (references name the minute, the batch, the lot)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from commerce.outbox import service as outbox
from core.clock import utcnow
from core.services import Services
from donations.energy import earning as energy
from donations.energy import points

BATCH = 1000


async def award_activity(ctx: dict[str, Any], batch: dict[str, Any]) -> int:
    return await energy.award_activity(ctx["services"], batch)


async def expire_all(services: Services, now: datetime | None = None) -> int:
    """Expire every lot past its time (as of `now`); returns the points expired."""
    now = now or utcnow()
    total = 0
    while True:
        async with services.db.transaction() as s:
            looked, done = await points.expire(s, now, BATCH)
            changes: dict[str, int] = {}
            for user_id, n in done:
                changes[user_id] = changes.get(user_id, 0) + n
            events = []
            for user_id, n in sorted(changes.items()):
                st = await points.standing(s, user_id, now)
                events.append(points.points_event(user_id, "expire", -n, st, now))
            await outbox.add(s, events)
        total += sum(changes.values())
        if looked < BATCH:
            break
    if total:
        await outbox.relay(services)
    return total


async def expire_points(ctx: dict[str, Any]) -> int:
    return await expire_all(ctx["services"])
