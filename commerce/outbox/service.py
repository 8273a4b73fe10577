"""The transactional outbox: events written with the change, published by a relay.

Delivery is at least once: a relay that dies after publishing but before marking a row
sent publishes it again; every event carries ids, so consumers can tell.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.stock import service as inventory
from core.events import WRITTEN_BY, publish_many
from core.services import Services

log = logging.getLogger("panen.outbox")

# Not a pub/sub topic: a stock hold to give back once the change that freed it commits.
RELEASE_TOPIC = "_release"


async def add(s: AsyncSession, rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Queue events `(topic, event)` with this transaction's change: one row for all."""
    if rows:
        await s.execute(
            text(
                "INSERT INTO outbox (events, xid)"
                " VALUES (CAST(:e AS jsonb), pg_current_xact_id()::text::bigint)"
            ),
            {"e": orjson.dumps(rows).decode()},
        )


def release_row(
    session_id: str, inventory_id: str, listing_id: str, order_id: str
) -> tuple[str, dict[str, Any]]:
    return (
        RELEASE_TOPIC,
        {
            "type": "release",
            "session_id": session_id,
            "inventory_id": inventory_id,
            "listing_id": listing_id,
            "order_id": order_id,
        },
    )


async def _release(services: Services, event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Give a hold back; returns the stock event to announce, if any."""
    sid = event["session_id"]
    left = await inventory.release(
        services, session_id=sid, inventory_id=event["inventory_id"], order_id=event["order_id"]
    )
    if left >= 0 and event["inventory_id"] == event["listing_id"]:
        return [
            (
                f"session:{sid}",
                {"type": "stock", "listing_id": event["listing_id"], "remaining": left},
            )
        ]
    return []


async def relay(services: Services, batch: int = 50) -> int:
    """Deliver unsent outbox rows, oldest first; returns how many rows were sent."""
    sent = 0
    while True:
        async with services.db.transaction() as s:
            rows = (
                await s.execute(
                    text(
                        "SELECT id, xid, events::text AS events FROM outbox WHERE sent_at IS NULL"
                        " ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"
                    ),
                    {"n": batch},
                )
            ).all()
            if not rows:
                return sent
            events: list[tuple[str, dict[str, Any]]] = []
            for row in rows:
                for topic, event in orjson.loads(row.events):
                    if topic == RELEASE_TOPIC:
                        events += await _release(services, event)
                    else:
                        # Which transaction wrote it: a room rebuilt from a snapshot of
                        # the database tells by this whether its read counted the event.
                        events.append((topic, {**event, WRITTEN_BY: row.xid}))
            # Each topic's events stay in row order; the pass goes in one round trip.
            await publish_many(services, events)
            await s.execute(
                text("UPDATE outbox SET sent_at = now() WHERE id = ANY(:ids)"),
                {"ids": [r.id for r in rows]},
            )
        sent += len(rows)
        if len(rows) < batch:
            return sent
