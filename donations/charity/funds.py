"""The charity's side of every money movement, inside the transaction that moves it.

Each movement toward or from a charity does three things together, or not at all: a
balanced ledger transaction (unless commerce already posted it, as for a sale's pledge),
exactly one transparency-log entry, and the bookkeeping that disbursements, reports and the
room read (the fund row oldest-first allocation draws from, the session's running sums).
Sponsor matches and goal milestones follow from the same transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.charities.models import Campaign
from commerce.ledger import service as ledger
from commerce.sessions.models import LiveSession
from core.clock import rfc3339
from core.db import insert_rows
from core.errors import conflict
from core.money import Money
from donations.charity.models import CharityFund, Match, SessionCharityTotal
from donations.transparency import log

OutboxRows = list[tuple[str, dict[str, Any]]]


def charity_disbursed(charity_id: str) -> ledger.Account:
    return ledger.Account(f"charity_disbursed:{charity_id}", "charity_disbursed", charity_id)


def match_sponsor(match: Match) -> ledger.Account:
    return ledger.sponsor_payable(match.sponsor_id)


def new_salt() -> str:
    return secrets.token_hex(32)


def commitment(salt: str, donor_id: str) -> str:
    """The donor as the public log shows them: hex SHA-256(salt || donor id), both as text."""
    return hashlib.sha256((salt + donor_id).encode()).hexdigest()


@dataclass
class Movement:
    """What one charity inflow needs to be recorded."""

    kind: str  # donation | pledge | match
    ref: str
    charity_id: str
    session_id: str | None
    amount: int
    currency: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)  # extra public fields of the entry
    donor_id: str | None = None
    donor_salt: str | None = None
    source_ref: str | None = None


def _entry(m: Movement) -> dict[str, Any]:
    entry: dict[str, Any] = {
        **m.data,
        "charity_id": m.charity_id,
        "session_id": m.session_id,
        "amount": m.amount,
        "currency": m.currency,
        "at": rfc3339(m.at),
    }
    if m.donor_id is not None and m.donor_salt is not None:
        entry["donor"] = commitment(m.donor_salt, m.donor_id)
    return entry


async def receive(s: AsyncSession, m: Movement) -> log.Appended:
    """Log an inflow and open its fund; the ledger posting is the caller's."""
    return (await receive_many(s, [m]))[0]


FUND_COLUMNS = (
    ("charity_id", "text"),
    ("kind", "text"),
    ("ref", "text"),
    ("entry_index", "bigint"),
    ("session_id", "text"),
    ("source_ref", "text"),
    ("donor_id", "text"),
    ("donor_salt", "text"),
    ("amount", "bigint"),
    ("allocated", "bigint"),
    ("currency", "text"),
    ("received_at", "timestamptz"),
)


async def receive_many(s: AsyncSession, movements: Sequence[Movement]) -> list[log.Appended]:
    """Log several inflows under one lock of the log and open their funds in one insert, so
    a settlement batch costs a few statements rather than a few per order."""
    appended = await log.append_many(s, [log.NewEntry(m.kind, m.ref, _entry(m)) for m in movements])
    rows = [
        {
            "charity_id": m.charity_id,
            "kind": m.kind,
            "ref": m.ref,
            "entry_index": a.index,
            "session_id": m.session_id,
            "source_ref": m.source_ref,
            "donor_id": m.donor_id,
            "donor_salt": m.donor_salt,
            "amount": m.amount,
            "allocated": 0,
            "currency": m.currency,
            "received_at": m.at,
        }
        for m, a in zip(movements, appended, strict=True)
    ]
    await insert_rows(s, "charity_funds", FUND_COLUMNS, rows)
    return appended


async def has_active_matches(s: AsyncSession, session_id: str, currency: str) -> bool:
    found = await s.scalar(
        select(Match.id)
        .where(
            Match.session_id == session_id, Match.currency == currency, Match.matched < Match.cap
        )
        .limit(1)
    )
    return found is not None


async def reverse(
    s: AsyncSession, fund: CharityFund, kind: str, ref: str, at: datetime, data: dict[str, Any]
) -> log.Appended:
    """Take back a fund's unspent money (a refund); refused if it was already disbursed."""
    if fund.allocated > 0:
        raise conflict(
            "charity_funds_disbursed",
            "the charity already spent this money; it cannot be taken back",
            ref=fund.ref,
        )
    amount = fund.amount
    appended = await log.append(
        s,
        kind,
        ref,
        {
            **data,
            "charity_id": fund.charity_id,
            "session_id": fund.session_id,
            "amount": amount,
            "currency": fund.currency,
            "reverses": fund.entry_index,
            "at": rfc3339(at),
        },
    )
    fund.amount = 0
    return appended


# --- A room's running sums and its goal -----------------------------------------------


async def bump_session(
    s: AsyncSession, session_id: str, *, pledged: int = 0, donated: int = 0, matched: int = 0
) -> tuple[int, int]:
    """Add to a room's charity sums under its row lock; returns (total before, after)."""
    stmt = (
        pg_insert(SessionCharityTotal)
        .values(session_id=session_id, pledged=pledged, donated=donated, matched=matched)
        .on_conflict_do_update(
            index_elements=[SessionCharityTotal.session_id],
            set_={
                "pledged": SessionCharityTotal.pledged + pledged,
                "donated": SessionCharityTotal.donated + donated,
                "matched": SessionCharityTotal.matched + matched,
            },
        )
        .returning(
            SessionCharityTotal.pledged, SessionCharityTotal.donated, SessionCharityTotal.matched
        )
    )
    row = (await s.execute(stmt)).one()
    after = int(row.pledged) + int(row.donated) + int(row.matched)
    return after - (pledged + donated + matched), after


def milestone_step(goal_units: int) -> int:
    """A milestone every tenth of the goal (at least every unit)."""
    return max(1, goal_units // 10)


async def milestone(
    s: AsyncSession, session_id: str, before: int, after: int, at: datetime
) -> OutboxRows:
    """The milestone event if this movement crossed a step of the room's campaign goal."""
    if after <= before:
        return []
    campaign = await s.scalar(
        select(Campaign)
        .join(LiveSession, LiveSession.campaign_id == Campaign.id)
        .where(LiveSession.id == session_id)
    )
    if campaign is None:
        return []
    was, now = before // campaign.unit_cost, after // campaign.unit_cost
    step = milestone_step(campaign.goal_units)
    reached_goal = was < campaign.goal_units <= now
    if now // step <= was // step and not reached_goal:
        return []
    event = {
        "type": "milestone",
        "session_id": session_id,
        "campaign_id": campaign.id,
        "unit_name": campaign.unit_name,
        "funded_units": now,
        "goal_units": campaign.goal_units,
        "at": rfc3339(at),
    }
    return [(f"session:{session_id}", event)]


# --- Sponsor matches -----------------------------------------------------------------------


async def apply_matches(
    s: AsyncSession, source: Movement, source_entry: int, at: datetime
) -> tuple[int, OutboxRows]:
    """Every active match of the source's room adds its ratio, up to what is left of its
    cap; each is its own ledger transaction and log entry. Returns (matched, events)."""
    if source.session_id is None:
        return 0, []
    matches = (
        (
            await s.execute(
                select(Match)
                .where(
                    Match.session_id == source.session_id,
                    Match.currency == source.currency,
                    Match.matched < Match.cap,
                )
                .order_by(Match.created_at, Match.id)
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    total, events = 0, []
    for match in matches:
        add = min(
            Money(source.amount, source.currency).bps(match.ratio_bps).amount,
            match.cap - match.matched,
        )
        if add <= 0:
            continue
        ref = f"match:{match.id}:{source.ref}"
        await ledger.post(
            s,
            "match",
            ref,
            source.currency,
            [
                ledger.Entry(match_sponsor(match), -add),
                ledger.Entry(ledger.charity_payable(source.charity_id), add),
            ],
        )
        await receive(
            s,
            Movement(
                kind="match",
                ref=ref,
                charity_id=source.charity_id,
                session_id=source.session_id,
                amount=add,
                currency=source.currency,
                at=at,
                data={
                    "match_id": match.id,
                    "sponsor_name": match.sponsor_name,
                    "matches": source_entry,
                },
                source_ref=source.ref,
            ),
        )
        match.matched += add
        total += add
        events.append(
            (
                f"session:{source.session_id}",
                {
                    "type": "match",
                    "session_id": source.session_id,
                    "match_id": match.id,
                    "amount": add,
                    "currency": source.currency,
                    "sponsor_name": match.sponsor_name,
                    "remaining": match.cap - match.matched,
                    "at": rfc3339(at),
                },
            )
        )
    return total, events


async def reverse_matches(s: AsyncSession, source_ref: str, at: datetime) -> tuple[int, OutboxRows]:
    """A refunded movement takes its matches back too; the sponsor's cap frees up again."""
    funds = (
        (
            await s.execute(
                select(CharityFund)
                .where(CharityFund.source_ref == source_ref, CharityFund.kind == "match")
                .order_by(CharityFund.id)
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    total, events = 0, []
    for fund in funds:
        if fund.amount == 0:
            continue
        amount = fund.amount
        match_id = fund.ref.split(":", 2)[1]
        match = await s.get(Match, match_id, with_for_update=True)
        assert match is not None
        ref = f"match_reversal:{match_id}:{source_ref}"
        await ledger.post(
            s,
            "match_reversal",
            ref,
            fund.currency,
            [
                ledger.Entry(match_sponsor(match), amount),
                ledger.Entry(ledger.charity_payable(fund.charity_id), -amount),
            ],
        )
        await reverse(s, fund, "match_reversal", ref, at, {"match_id": match_id})
        match.matched -= amount
        total += amount
        events.append(
            (
                f"session:{fund.session_id}",
                {
                    "type": "match",
                    "session_id": fund.session_id,
                    "match_id": match_id,
                    "amount": -amount,
                    "currency": fund.currency,
                    "sponsor_name": match.sponsor_name,
                    "remaining": match.cap - match.matched,
                    "at": rfc3339(at),
                },
            )
        )
    return total, events
