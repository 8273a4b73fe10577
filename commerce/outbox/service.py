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

from commerce.orders.models import Order
from commerce.stock import service as inventory
from commerce.stock.events import Release, Stock
from core.events import WRITTEN_BY, Topical, as_json, publish_many
from core.redis import UNREACHABLE
from core.services import Services

log = logging.getLogger("panen.outbox")

# Not a pub/sub topic: a stock hold to give back once the change that freed it commits.
RELEASE_TOPIC = "_release"


async def add(s: AsyncSession, rows: Sequence[Topical], entry_of: str | None = None) -> None:
    """Queue events `(topic, event)` with this transaction's change: one row for all. An
    insert of a new row: it waits on no lock.

    `entry_of` names the transparency-log entry these events point at (their `entry_index`),
    which gets its index only after this commits: the row is held until `entries_known`
    fills it in, and then sent as written, still as this transaction's events."""
    if rows:
        await s.execute(
            text(
                "INSERT INTO outbox (events, xid, entry_of)"
                " VALUES (CAST(:e AS jsonb), pg_current_xact_id()::text::bigint, :ref)"
            ),
            {
                "e": orjson.dumps([(topic, as_json(event)) for topic, event in rows]).decode(),
                "ref": entry_of,
            },
        )


async def entries_known(s: AsyncSession, indexes: dict[str, int]) -> None:
    """Log entries got their indexes: the rows held for them get `entry_index` in each
    event that has the field, and are released to the relay."""
    if indexes:
        await s.execute(
            text(
                "UPDATE outbox o SET entry_of = NULL, events = ("
                "  SELECT jsonb_agg(CASE WHEN x.e->1 ? 'entry_index'"
                "   THEN jsonb_set(x.e, '{1,entry_index}', to_jsonb(k.idx)) ELSE x.e END"
                "   ORDER BY x.n)"
                "  FROM jsonb_array_elements(o.events) WITH ORDINALITY AS x(e, n))"
                " FROM unnest(CAST(:refs AS text[]), CAST(:idx AS bigint[])) AS k(ref, idx)"
                " WHERE o.entry_of = k.ref"
            ),
            {"refs": list(indexes), "idx": list(indexes.values())},
        )


def release_row(order: Order) -> Topical:
    """The order's stock hold, to give back once this transaction commits."""
    return (
        RELEASE_TOPIC,
        Release(
            session_id=order.session_id,
            inventory_id=order.inventory_id,
            listing_id=order.listing_id,
            order_id=order.id,
        ),
    )


async def _release(services: Services, raw: dict[str, Any]) -> list[Topical]:
    """Give a hold back; returns the stock event to announce, if any."""
    event = Release.from_json(raw)
    left = await inventory.release(
        services,
        session_id=event.session_id,
        inventory_id=event.inventory_id,
        order_id=event.order_id,
    )
    if left < 0:  # no hold was there (given back before, or the counter was rebuilt)
        return []
    deal = None if event.inventory_id == event.listing_id else event.inventory_id
    stock = Stock(listing_id=event.listing_id, remaining=left, deal_id=deal)
    return [(f"session:{event.session_id}", stock)]


async def relay(services: Services, batch: int = 50) -> int:
    """Deliver unsent outbox rows, oldest first; returns how many rows were sent."""
    sent = 0
    while True:
        async with services.db.transaction() as s:
            rows = (
                await s.execute(
                    text(
                        "SELECT id, xid, events::text AS events FROM outbox"
                        " WHERE sent_at IS NULL AND entry_of IS NULL"
                        " ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"
                    ),
                    {"n": batch},
                )
            ).all()
            if not rows:
                return sent
            events: list[Topical] = []
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


async def deliver(services: Services) -> None:
    """After a commit: send its events now if Redis is there. Never raises: what this
    cannot send (Redis restarting) stays in the outbox and the relay's cron sends it, so
    a committed change is never reported as failed for it."""
    try:
        await relay(services)
    except UNREACHABLE as exc:  # expected while Redis restarts or a shard fails over
        log.warning("outbox not relayed now (%s); the relay's cron will", exc)
    except Exception:
        log.warning("outbox not relayed now; the relay's cron will", exc_info=True)
