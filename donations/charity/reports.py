"""Public reports from the ledger: per charity and per session, received, matched, disbursed.

received = pledges + donations + matches - reversals, each read from the charity's payable
account by the kind of ledger transaction that moved it; balance = received - disbursed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text

from core.db import Database
from donations.charity.schemas import CharityReport, SessionReport, Totals

KINDS = {
    "sale": "pledges",
    "donation": "donations",
    "match": "matches",
    "refund": "reversals",
    "match_reversal": "reversals",
    "energy": "matches",  # a sponsor's money, paid as viewers redeem energy points
    "disbursement": "disbursed",
}


async def charity_report(db: Database, charity_id: str) -> CharityReport:
    totals = await charity_totals(db, [charity_id])
    return {"charity_id": charity_id, "currencies": totals[charity_id]}


async def charity_totals(db: Database, charity_ids: Sequence[str]) -> dict[str, dict[str, Totals]]:
    """Each charity's public totals by currency, in one query for all of them."""
    accounts = {f"charity_payable:{c}": c for c in charity_ids}
    async with db.lagging() as s:  # public: a replica a little behind will do
        rows = (
            await s.execute(
                text(
                    "SELECT p.account_code, t.kind, p.currency, sum(p.amount) AS amount"
                    " FROM ledger_postings p JOIN ledger_transactions t ON t.id = p.transaction_id"
                    " WHERE p.account_code = ANY(:accts)"
                    " GROUP BY p.account_code, t.kind, p.currency"
                ),
                {"accts": list(accounts)},
            )
        ).all()
    sums: dict[str, dict[str, dict[str, int]]] = {c: {} for c in charity_ids}
    for account, kind, currency, amount in rows:
        by_kind = sums[accounts[account]].setdefault(
            currency,
            {"pledges": 0, "donations": 0, "matches": 0, "reversals": 0, "disbursed": 0},
        )
        name = KINDS.get(kind, "other")
        by_kind[name] = by_kind.get(name, 0) + int(amount)
    return {
        c: {cur: _totals(k) for cur, k in by_currency.items()} for c, by_currency in sums.items()
    }


def _totals(sums: dict[str, int]) -> Totals:
    received = sums["pledges"] + sums["donations"] + sums["matches"] + sums["reversals"]
    disbursed = -sums["disbursed"]
    return {
        "received": received,
        "pledges": sums["pledges"],
        "donations": sums["donations"],
        "matched": sums["matches"],
        "reversals": -sums["reversals"],
        "disbursed": disbursed,
        "balance": received - disbursed,
    }


async def session_report(db: Database, session_id: str) -> SessionReport:
    async with db.lagging() as s:  # public: a replica a little behind will do
        sums = (
            await s.execute(
                text(
                    "SELECT pledged, donated, matched FROM session_charity_totals"
                    " WHERE session_id = :sid"
                ),
                {"sid": session_id},
            )
        ).one_or_none()
        disbursed = await s.scalar(
            text(
                "SELECT coalesce(sum(a.amount), 0) FROM disbursement_allocations a"
                " JOIN charity_funds f ON f.id = a.fund_id WHERE f.session_id = :sid"
            ),
            {"sid": session_id},
        )
    pledged, donated, matched = (int(v) for v in sums) if sums else (0, 0, 0)
    return {
        "session_id": session_id,
        "pledged": pledged,
        "donated": donated,
        "matched": matched,
        "received": pledged + donated + matched,
        "disbursed": int(disbursed or 0),
    }
