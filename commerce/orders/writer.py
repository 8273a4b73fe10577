"""Writes reserved orders, coalescing the concurrent ones of a process into one statement.

In a stampede hundreds of reservations succeed within milliseconds; one transaction each
would spend the time on round trips and commits. Instead each waits for the next batch:
up to `MAX_BATCH` orders (with their payment intents and first status) go in one INSERT
… SELECT FROM unnest(…), under the key-share lock on their counters' generation rows
(see `inventory.rebuild`), and several batches may be in flight at once. The same
statement finds each order's address (the one named, or the buyer's default) and prices
its shipping (`zones.order_fee`), so the hot path still makes one round trip.
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
    ("address_id", "text"),  # null: the buyer's default address
    ("weight_g", "bigint"),
)

_unnest = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in COLUMNS)
_names = ", ".join(name for name, _ in COLUMNS)


def fee_sql(weight: str, box_paid: str) -> str:
    """`commerce.shipping.zones.order_fee` in SQL, over the row's `base` and `per_kg`: the
    order's own kilograms begun, and the base unless its box already has a paid order."""
    w = f"CAST({weight} AS bigint)"
    return (
        f"CASE WHEN {w} <= 0 THEN 0"
        f" ELSE per_kg * (({w} + 999) / 1000) + CASE WHEN {box_paid} THEN 0 ELSE base END END"
    )


# Whether the box an order would join (its session, buyer, farmer and address: unboxed
# paid orders, or a box still being packed) already holds a paid order, which paid the
# base fee. `commerce.shipping.service.box_is_paid` asks the same for a quote.
BOX_PAID = """EXISTS (
  SELECT 1 FROM orders o
   WHERE o.session_id = ok.session_id AND o.buyer_id = ok.buyer_id
     AND o.farmer_id = ok.farmer_id AND o.address_id = ok.addr
     AND o.status IN ('paid', 'settled')
     AND (o.shipment_id IS NULL
          OR EXISTS (SELECT 1 FROM shipments sh
                      WHERE sh.id = o.shipment_id AND sh.status = 'packing')))"""

INSERT_ORDERS = text(
    f"""
WITH i AS (
  SELECT * FROM unnest({_unnest}) WITH ORDINALITY AS t({_names}, n)
), g AS (
  SELECT inventory_id, generation FROM inventory_generations
   WHERE inventory_id IN (SELECT inventory_id FROM i) FOR KEY SHARE
), a AS (
  -- Each order's address: the one named, or the buyer's default; looked up per buyer
  -- (LATERAL), as a join let the planner hash every address there is for each batch.
  SELECT i.n, ad.id AS addr, ad.zone
    FROM i CROSS JOIN LATERAL (
      SELECT d.id, d.zone FROM addresses d
       WHERE d.user_id = i.buyer_id AND NOT d.archived
         AND (d.id = i.address_id OR (i.address_id IS NULL AND d.is_default))
       LIMIT 1
    ) ad
), r AS (
  SELECT a.n, rate.base_fee, rate.per_kg_fee,
         EXISTS (SELECT 1 FROM shipping_rates x
                  WHERE x.farmer_id = i.farmer_id AND x.currency = i.currency) AS priced
    FROM i JOIN a ON a.n = i.n
    LEFT JOIN LATERAL (
      SELECT sr.base_fee, sr.per_kg_fee FROM shipping_rates sr
       WHERE sr.farmer_id = i.farmer_id AND sr.currency = i.currency
         AND sr.zone IN (a.zone, '*')
       ORDER BY sr.zone = '*' LIMIT 1
    ) rate ON true
), ok AS (
  SELECT i.*, a.addr, coalesce(r.base_fee, 0) AS base, coalesce(r.per_kg_fee, 0) AS per_kg
    FROM i
    JOIN g ON g.inventory_id = i.inventory_id AND g.generation = i.generation
    JOIN a ON a.n = i.n
    JOIN r ON r.n = i.n
   WHERE r.base_fee IS NOT NULL OR NOT r.priced
), f AS (
  SELECT ok.*,
         {fee_sql("ok.weight_g", BOX_PAID)} AS shipping_fee
    FROM ok
), o AS (
  INSERT INTO orders (id, session_id, listing_id, deal_id, inventory_id, buyer_id, farmer_id,
                      charity_id, idempotency_key, quantity, unit_price, total, pledge_amount,
                      fee_amount, farmer_amount, currency, status, expires_at, address_id,
                      weight_g, shipping_fee)
  SELECT f.id, f.session_id, f.listing_id, f.deal_id, f.inventory_id, f.buyer_id, f.farmer_id,
         f.charity_id, f.idempotency_key, f.quantity, f.unit_price, f.total, f.pledge_amount,
         f.fee_amount, f.farmer_amount, f.currency, 'reserved', f.expires_at, f.addr,
         f.weight_g, f.shipping_fee
    FROM f ORDER BY f.n
  ON CONFLICT DO NOTHING
  RETURNING id, created_at, address_id, shipping_fee
), p AS (
  INSERT INTO payments (id, purpose, order_id, payer_id, provider, provider_ref, status, amount,
                        currency)
  SELECT i.payment_id, 'order', o.id, i.buyer_id, i.provider, i.provider_ref, 'pending',
         i.total + o.shipping_fee, i.currency
    FROM i JOIN o ON o.id = i.id
), h AS (
  INSERT INTO order_status_history (order_id, status) SELECT o.id, 'reserved' FROM o
)
SELECT i.id, g.inventory_id IS NOT NULL AS generation_ok, a.addr IS NOT NULL AS addressed,
       a.zone, r.base_fee IS NOT NULL OR NOT coalesce(r.priced, true) AS shippable,
       o.created_at, o.address_id, o.shipping_fee
  FROM i
  LEFT JOIN g ON g.inventory_id = i.inventory_id AND g.generation = i.generation
  LEFT JOIN a ON a.n = i.n
  LEFT JOIN r ON r.n = i.n
  LEFT JOIN o ON o.id = i.id
"""  # noqa: S608 (only our own column names and expressions are interpolated)
)


@dataclass(frozen=True, slots=True)
class Written:
    generation_ok: bool  # False: the counter was rebuilt after this reservation
    addressed: bool  # False: no such address of the buyer's (or no default)
    zone: str | None  # the address's zone
    shippable: bool  # False: the farmer does not ship to that zone
    created_at: datetime | None  # None: not written (above), or the key already has one
    address_id: str | None = None
    shipping_fee: int = 0


async def _insert(services: Services, rows: list[dict[str, Any]]) -> list[Written]:
    arrays = {name: [r[name] for r in rows] for name, _ in COLUMNS}
    async with services.db.statement() as conn:  # one statement: the order, payment, status
        result = (await conn.execute(INSERT_ORDERS, arrays)).all()
    written = {
        r.id: Written(
            bool(r.generation_ok),
            bool(r.addressed),
            r.zone,
            bool(r.shippable),
            r.created_at,
            r.address_id,
            int(r.shipping_fee or 0),
        )
        for r in result
    }
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
