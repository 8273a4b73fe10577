"""Totals derived from orders: a room's sales (for the live snapshot) and a farmer's.

They count what `lifecycle.COUNTED` says (settled sales), exactly the orders whose
`order_paid` event a room or a farmer has folded and whose `refund` it has not: a state
rebuilt from here and a state folded from events agree in every state an order can be in.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from commerce.ledger import service as ledger
from commerce.orders.lifecycle import COUNTED
from commerce.orders.schemas import FarmerTotals
from core.clock import rfc3339
from core.db import Database


async def session_totals(db: Database, session_id: str) -> dict[str, Any]:
    """`{orders, units_sold: {listing_id: units}, gross, charity: {pledged}}` of a room."""
    async with db.reader() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT listing_id, count(*) AS orders, sum(quantity) AS units,"
                    " sum(total) AS gross, sum(pledge_amount) AS pledged FROM orders"
                    " WHERE session_id = :sid AND status = ANY(:counted) GROUP BY listing_id"
                ),
                {"sid": session_id, "counted": COUNTED_STATUSES},
            )
        ).all()
    return {
        "orders": sum(int(r.orders) for r in rows),
        "units_sold": {r.listing_id: int(r.units) for r in rows},
        "gross": sum(int(r.gross) for r in rows),
        "charity": {"pledged": sum(int(r.pledged) for r in rows)},
    }


SERIES_POINTS = 720
COUNTED_STATUSES = [str(s) for s in COUNTED]


async def farmer_totals(db: Database, farmer_id: str) -> FarmerTotals:
    async with db.reader() as s:
        overall = (
            await s.execute(
                text(
                    "SELECT coalesce(sum(quantity), 0) AS units, coalesce(sum(total), 0) AS gross,"
                    " coalesce(sum(pledge_amount), 0) AS pledged,"
                    " coalesce(sum(fee_amount), 0) AS fees"
                    " FROM orders WHERE farmer_id = :f AND status = ANY(:counted)"
                ),
                {"f": farmer_id, "counted": COUNTED_STATUSES},
            )
        ).one()
        by_product = (
            await s.execute(
                text(
                    "SELECT p.id, p.name, sum(o.quantity) AS units, sum(o.total) AS gross,"
                    " sum(o.pledge_amount) AS pledged FROM orders o"
                    " JOIN listings l ON l.id = o.listing_id JOIN products p ON p.id = l.product_id"
                    " WHERE o.farmer_id = :f AND o.status = ANY(:counted)"
                    " GROUP BY p.id, p.name ORDER BY p.id"
                ),
                {"f": farmer_id, "counted": COUNTED_STATUSES},
            )
        ).all()
        by_session = (
            await s.execute(
                text(
                    "SELECT s.id, s.title, s.status, sum(o.quantity) AS units,"
                    " sum(o.total) AS gross, sum(o.pledge_amount) AS pledged FROM orders o"
                    " JOIN sessions s ON s.id = o.session_id"
                    " WHERE o.farmer_id = :f AND o.status = ANY(:counted)"
                    " GROUP BY s.id, s.title, s.status ORDER BY s.id"
                ),
                {"f": farmer_id, "counted": COUNTED_STATUSES},
            )
        ).all()
        owed = await ledger.balance(s, ledger.farmer_payable(farmer_id).code)
        # Payouts by where they are: on their way (pending, submitted) or completed.
        moved: dict[bool, int] = dict(
            (
                await s.execute(
                    text(
                        "SELECT status = 'completed', coalesce(sum(amount), 0) FROM payouts"
                        " WHERE farmer_id = :f AND status <> 'failed' GROUP BY 1"
                    ),
                    {"f": farmer_id},
                )
            ).all()
        )
        # Gross over time, summed per minute of payment and running, for the dashboard's
        # chart; the last SERIES_POINTS minutes with sales (the running sum covers all).
        series = (
            await s.execute(
                text(
                    "SELECT at, gross FROM ("
                    " SELECT date_trunc('minute', paid_at) AS at,"
                    " sum(sum(total)) OVER (ORDER BY date_trunc('minute', paid_at)) AS gross"
                    " FROM orders WHERE farmer_id = :f AND status = ANY(:counted)"
                    " AND paid_at IS NOT NULL GROUP BY 1) m ORDER BY at DESC LIMIT :n"
                ),
                {"f": farmer_id, "n": SERIES_POINTS, "counted": COUNTED_STATUSES},
            )
        ).all()
    return {
        "farmer_id": farmer_id,
        "units_sold": int(overall.units),
        "gross": int(overall.gross),
        "pledged": int(overall.pledged),
        "fees": int(overall.fees),
        # What the ledger owes the farmer (their share of settled sales, less refunds, less
        # payouts made), what is in payouts on their way, and what payouts delivered.
        "payout_pending": owed,
        "payout_in_transit": int(moved.get(False, 0)),
        "payout_settled": int(moved.get(True, 0)),
        "by_product": [
            {
                "product_id": r.id,
                "name": r.name,
                "units_sold": int(r.units),
                "gross": int(r.gross),
                "pledged": int(r.pledged),
            }
            for r in by_product
        ],
        "series": [{"at": rfc3339(r.at), "gross": int(r.gross)} for r in reversed(series)],
        "by_session": [
            {
                "session_id": r.id,
                "title": r.title,
                "status": r.status,
                "units_sold": int(r.units),
                "gross": int(r.gross),
                "pledged": int(r.pledged),
            }
            for r in by_session
        ],
    }


async def session_recap(db: Database, session_id: str) -> dict[str, Any]:
    """What a show sold, for the host's summary after it: each product's units, gross and
    pledge, the buyers, the busiest minute, and each flash deal's units (settled sales)."""
    counted = {"sid": session_id, "counted": COUNTED_STATUSES}
    async with db.reader() as s:
        products = (
            await s.execute(
                text(
                    "SELECT o.listing_id, p.name, p.unit, count(*) AS orders,"
                    " sum(o.quantity) AS units, sum(o.total) AS gross,"
                    " sum(o.pledge_amount) AS pledged"
                    " FROM orders o JOIN listings l ON l.id = o.listing_id"
                    " JOIN products p ON p.id = l.product_id"
                    " WHERE o.session_id = :sid AND o.status = ANY(:counted)"
                    " GROUP BY o.listing_id, p.name, p.unit ORDER BY sum(o.total) DESC, p.name"
                ),
                counted,
            )
        ).all()
        buyers = await s.scalar(
            text(
                "SELECT count(DISTINCT buyer_id) FROM orders"
                " WHERE session_id = :sid AND status = ANY(:counted)"
            ),
            counted,
        )
        busiest = (
            await s.execute(
                text(
                    "SELECT date_trunc('minute', paid_at) AS minute, count(*) AS orders,"
                    " sum(quantity) AS units FROM orders"
                    " WHERE session_id = :sid AND status = ANY(:counted) AND paid_at IS NOT NULL"
                    " GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
                ),
                counted,
            )
        ).first()
        deals = (
            await s.execute(
                text(
                    "SELECT d.id, p.name, d.price, d.stock, d.starts_at, d.ends_at,"
                    " coalesce(sum(o.quantity), 0) AS units"
                    " FROM flash_deals d JOIN listings l ON l.id = d.listing_id"
                    " JOIN products p ON p.id = l.product_id"
                    " LEFT JOIN orders o ON o.deal_id = d.id AND o.status = ANY(:counted)"
                    " WHERE d.session_id = :sid"
                    " GROUP BY d.id, p.name ORDER BY d.starts_at"
                ),
                counted,
            )
        ).all()
    return {
        "buyers": int(buyers or 0),
        "by_product": [
            {
                "listing_id": r.listing_id,
                "product_name": r.name,
                "unit": r.unit,
                "orders": int(r.orders),
                "units": int(r.units),
                "gross": int(r.gross),
                "pledged": int(r.pledged),
            }
            for r in products
        ],
        "busiest_minute": (
            {
                "at": rfc3339(busiest.minute),
                "orders": int(busiest.orders),
                "units": int(busiest.units),
            }
            if busiest is not None
            else None
        ),
        "deals": [
            {
                "deal_id": r.id,
                "product_name": r.name,
                "price": int(r.price),
                "stock": int(r.stock),
                "units": int(r.units),
                "starts_at": rfc3339(r.starts_at),
                "ends_at": rfc3339(r.ends_at),
            }
            for r in deals
        ],
    }
