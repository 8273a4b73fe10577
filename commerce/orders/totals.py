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
