"""Writes reserved orders, coalescing the concurrent ones of a process into one statement.

In a stampede hundreds of reservations succeed within milliseconds; one transaction each
would spend the time on round trips and commits. Instead each waits for the next batch:
up to `MAX_BATCH` orders (with their payment intents and first status) go in one INSERT
… SELECT FROM unnest(…), under the key-share lock on their counters' generation rows
(see `inventory.rebuild`), and several batches may be in flight at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.batching import Batcher
from core.services import Services

log = logging.getLogger("panen.orders")

MAX_BATCH = 200
MAX_IN_FLIGHT = 4

COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "text"),
    ("session_id", "text"),
    ("listing_id", "text"),
    ("deal_id", "text"),
    ("inventory_id", "text"),
    ("generation", "int"),
    ("buyer_id", "text"),
    ("farmer_id", "text"),
    ("charity_id", "text"),
    ("idempotency_key", "text"),
    ("quantity", "int"),
    ("unit_price", "bigint"),
    ("total", "bigint"),
    ("pledge_amount", "bigint"),
    ("fee_amount", "bigint"),
    ("farmer_amount", "bigint"),
    ("currency", "text"),
    ("expires_at", "timestamptz"),
    ("payment_id", "text"),
    ("provider", "text"),
    ("provider_ref", "text"),
)

_unnest = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in COLUMNS)
_names = ", ".join(name for name, _ in COLUMNS)

INSERT_ORDERS = text(
    f"""
WITH i AS (
  SELECT * FROM unnest({_unnest}) AS t({_names})
), g AS (
  SELECT inventory_id, generation FROM inventory_generations
   WHERE inventory_id IN (SELECT inventory_id FROM i) FOR KEY SHARE
), o AS (
  INSERT INTO orders (id, session_id, listing_id, deal_id, inventory_id, buyer_id, farmer_id,
                      charity_id, idempotency_key, quantity, unit_price, total, pledge_amount,
                      fee_amount, farmer_amount, currency, status, expires_at)
  SELECT i.id, i.session_id, i.listing_id, i.deal_id, i.inventory_id, i.buyer_id, i.farmer_id,
         i.charity_id, i.idempotency_key, i.quantity, i.unit_price, i.total, i.pledge_amount,
         i.fee_amount, i.farmer_amount, i.currency, 'reserved', i.expires_at
    FROM i JOIN g ON g.inventory_id = i.inventory_id AND g.generation = i.generation
  ON CONFLICT DO NOTHING
  RETURNING id, created_at
), p AS (
  INSERT INTO payments (id, purpose, order_id, payer_id, provider, provider_ref, status, amount,
                        currency)
  SELECT i.payment_id, 'order', o.id, i.buyer_id, i.provider, i.provider_ref, 'pending', i.total,
         i.currency
    FROM i JOIN o ON o.id = i.id
), h AS (
  INSERT INTO order_status_history (order_id, status) SELECT o.id, 'reserved' FROM o
)
SELECT i.id, g.inventory_id IS NOT NULL AS generation_ok, o.created_at
  FROM i
  LEFT JOIN g ON g.inventory_id = i.inventory_id AND g.generation = i.generation
  LEFT JOIN o ON o.id = i.id
"""  # noqa: S608 (only our own column names are interpolated)
)


@dataclass(frozen=True, slots=True)
class Written:
    generation_ok: bool  # False: the counter was rebuilt after this reservation
    created_at: datetime | None  # None: an order with this (buyer, key) already exists


async def _insert(services: Services, rows: list[dict[str, Any]]) -> list[Written]:
    arrays = {name: [r[name] for r in rows] for name, _ in COLUMNS}
    async with services.db.engine.begin() as conn:
        result = (await conn.execute(INSERT_ORDERS, arrays)).all()
    written = {r.id: Written(bool(r.generation_ok), r.created_at) for r in result}
    return [written[r["id"]] for r in rows]


async def _insert_batch(
    services: Services, rows: list[dict[str, Any]]
) -> list[Written | Exception]:
    """Write a batch in one statement; if that fails, each row on its own, so that one bad
    row (or a conflict between batches, e.g. a deadlock after Redis lost its idempotency
    records) fails only its own order, and each caller learns its own row's fate."""
    try:
        return list(await _insert(services, rows))
    except DBAPIError as exc:
        if len(rows) == 1:
            return [exc]
        log.warning("order batch failed; writing its %d orders singly", len(rows))
    out: list[Written | Exception] = []
    for row in rows:
        try:
            out.append((await _insert(services, [row]))[0])
        except DBAPIError as exc:
            out.append(exc)
    return out


async def write(services: Services, params: dict[str, Any]) -> Written:
    """Insert one reserved order (with its payment intent and first status), in a batch
    with the other orders this process is writing at the same moment."""
    batcher: Batcher[dict[str, Any], Written | Exception] = services.shared(
        "commerce.order_writer",
        lambda: Batcher(
            lambda rows: _insert_batch(services, rows),
            max_batch=MAX_BATCH,
            max_in_flight=MAX_IN_FLIGHT,
        ),
    )
    written = await batcher.submit(params)
    assert not isinstance(written, Exception)  # the batcher raised it for us
    return written
