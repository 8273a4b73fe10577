"""Totals derived from orders: a room's sales (for the live snapshot) and a farmer's."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from commerce.ledger import service as ledger
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
                    " WHERE session_id = :sid AND status IN ('paid','settled') GROUP BY listing_id"
                ),
                {"sid": session_id},
            )
        ).all()
    return {
        "orders": sum(int(r.orders) for r in rows),
        "units_sold": {r.listing_id: int(r.units) for r in rows},
        "gross": sum(int(r.gross) for r in rows),
        "charity": {"pledged": sum(int(r.pledged) for r in rows)},
    }


SERIES_POINTS = 720


async def farmer_totals(db: Database, farmer_id: str) -> dict[str, Any]:
    async with db.reader() as s:
        overall = (
            await s.execute(
                text(
                    "SELECT coalesce(sum(quantity), 0) AS units, coalesce(sum(total), 0) AS gross,"
                    " coalesce(sum(pledge_amount), 0) AS pledged,"
                    " coalesce(sum(fee_amount), 0) AS fees,"
                    " coalesce(sum(farmer_amount) FILTER (WHERE status = 'paid'), 0) AS pending"
                    " FROM orders WHERE farmer_id = :f AND status IN ('paid','settled')"
                ),
                {"f": farmer_id},
            )
        ).one()
        by_product = (
            await s.execute(
                text(
                    "SELECT p.id, p.name, sum(o.quantity) AS units, sum(o.total) AS gross,"
                    " sum(o.pledge_amount) AS pledged FROM orders o"
                    " JOIN listings l ON l.id = o.listing_id JOIN products p ON p.id = l.product_id"
                    " WHERE o.farmer_id = :f AND o.status IN ('paid','settled')"
                    " GROUP BY p.id, p.name ORDER BY p.id"
                ),
                {"f": farmer_id},
            )
        ).all()
        by_session = (
            await s.execute(
                text(
                    "SELECT s.id, s.title, s.status, sum(o.quantity) AS units,"
                    " sum(o.total) AS gross, sum(o.pledge_amount) AS pledged FROM orders o"
                    " JOIN sessions s ON s.id = o.session_id"
                    " WHERE o.farmer_id = :f AND o.status IN ('paid','settled')"
                    " GROUP BY s.id, s.title, s.status ORDER BY s.id"
                ),
                {"f": farmer_id},
            )
        ).all()
        settled = await ledger.balance(s, ledger.farmer_payable(farmer_id).code)
        # Gross over time, summed per minute of payment and running, for the dashboard's
        # chart; the last SERIES_POINTS minutes with sales (the running sum covers all).
        series = (
            await s.execute(
                text(
                    "SELECT at, gross FROM ("
                    " SELECT date_trunc('minute', paid_at) AS at,"
                    " sum(sum(total)) OVER (ORDER BY date_trunc('minute', paid_at)) AS gross"
                    " FROM orders WHERE farmer_id = :f AND status IN ('paid','settled')"
                    " AND paid_at IS NOT NULL GROUP BY 1) m ORDER BY at DESC LIMIT :n"
                ),
                {"f": farmer_id, "n": SERIES_POINTS},
            )
        ).all()
    return {
        "farmer_id": farmer_id,
        "units_sold": int(overall.units),
        "gross": int(overall.gross),
        "pledged": int(overall.pledged),
        "fees": int(overall.fees),
        # Paid but not yet through settlement; and what the ledger owes the farmer.
        "payout_pending": int(overall.pending),
        "payout_settled": settled,
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
