"""A room's charity sums for the live snapshot (read by `live.rooms` on a cold rebuild)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from core.clock import rfc3339
from core.db import Database
from donations.gifts.schemas import ANONYMOUS, display_name

TOP_DONORS = 10


async def session_totals(db: Database, session_id: str) -> dict[str, Any]:
    """`{charity: {donated, matched}, top_donors: [{display_name, amount}]}`, names as each
    giver chose to be shown; anonymous gifts count in the sums, not on the board."""
    async with db.reader() as s:
        sums = (
            await s.execute(
                text("SELECT donated, matched FROM session_charity_totals WHERE session_id = :s"),
                {"s": session_id},
            )
        ).one_or_none()
        givers = (
            await s.execute(
                text(
                    "SELECT u.display_name, d.visibility, sum(d.amount) AS amount"
                    " FROM donations d JOIN users u ON u.id = d.donor_id"
                    " WHERE d.session_id = :s AND d.status = 'paid'"
                    " GROUP BY u.display_name, d.visibility"
                ),
                {"s": session_id},
            )
        ).all()
    named: dict[str, int] = {}
    for name, visibility, amount in givers:
        shown = display_name(name, visibility)
        if shown != ANONYMOUS:  # the anonymous are many givers, not one to rank
            named[shown] = named.get(shown, 0) + int(amount)
    top = sorted(named.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_DONORS]
    return {
        "charity": {
            "donated": int(sums.donated) if sums else 0,
            "matched": int(sums.matched) if sums else 0,
        },
        "top_donors": [{"display_name": n, "amount": a} for n, a in top],
    }


BIGGEST_GIFTS = 3


async def session_gifts(db: Database, session_id: str) -> dict[str, Any]:
    """The room's paid gifts for the host's summary: how many, from how many givers, and
    the biggest few (names as each giver chose to be shown)."""
    async with db.reader() as s:
        count = (
            await s.execute(
                text(
                    "SELECT count(*) AS gifts, count(DISTINCT donor_id) AS givers FROM donations"
                    " WHERE session_id = :s AND status = 'paid'"
                ),
                {"s": session_id},
            )
        ).one()
        biggest = (
            await s.execute(
                text(
                    "SELECT d.id, u.display_name, d.visibility, d.amount, d.currency, d.paid_at"
                    " FROM donations d JOIN users u ON u.id = d.donor_id"
                    " WHERE d.session_id = :s AND d.status = 'paid'"
                    " ORDER BY d.amount DESC, d.paid_at LIMIT :n"
                ),
                {"s": session_id, "n": BIGGEST_GIFTS},
            )
        ).all()
    return {
        "gifts": int(count.gifts),
        "givers": int(count.givers),
        "biggest_gifts": [
            {
                "donation_id": r.id,
                "display_name": display_name(r.display_name, r.visibility),
                "amount": int(r.amount),
                "currency": r.currency,
                "at": rfc3339(r.paid_at),
            }
            for r in biggest
        ],
    }
