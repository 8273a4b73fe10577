"""The charity's side of every money movement, inside the transaction that moves it.

Each movement toward or from a charity does three things together, or not at all: a
balanced ledger transaction (unless the caller posted it, as settlement does for a sale's
pledge), exactly one transparency-log entry, and the bookkeeping that disbursements,
reports and the room read (the fund row that oldest-first allocation draws from, the
room's running sums). Sponsor matches and goal milestones follow in the same transaction.

A `Journal` collects the entries while the flow runs and `write`s them at its end, to the
log's queue (no lock), with the fund rows they open; after the commit the flow waits for
`sequencer.sequence` to give them their indexes. Rows are locked in one order everywhere:
charity funds by id, then a room's matches, then its running sums, rooms by id.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.charities.models import Campaign
from commerce.ledger import service as ledger
from commerce.sessions.models import LiveSession
from core.clock import rfc3339
from core.db import insert_rows
from core.errors import conflict
from core.events import Topical
from core.money import Money
from donations.charity.events import Match as MatchEvent
from donations.charity.events import Milestone
from donations.charity.models import CharityFund, Match, SessionCharityTotal
from donations.transparency import log

OutboxRows = list[Topical]


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

    kind: str  # donation | pledge | match | energy
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


@dataclass(frozen=True, slots=True)
class Pledge:
    """A settled order's pledge reaching its charity (or, reversed, leaving it)."""

    order_id: str
    session_id: str
    charity_id: str
    buyer_id: str
    amount: int
    currency: str
    at: datetime

    @property
    def ref(self) -> str:
        return f"pledge:{self.order_id}"


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


FUND_COLUMNS = (
    ("charity_id", "text"),
    ("kind", "text"),
    ("ref", "text"),
    ("session_id", "text"),
    ("source_ref", "text"),
    ("donor_id", "text"),
    ("donor_salt", "text"),
    ("amount", "bigint"),
    ("allocated", "bigint"),
    ("currency", "text"),
    ("received_at", "timestamptz"),
    ("held", "bool"),
)


class Journal:
    """The log entries (and the funds they open) of one transaction, written at its end."""

    def __init__(self) -> None:
        self._entries: list[log.NewEntry] = []
        self._inflows: list[Movement] = []

    @property
    def refs(self) -> list[str]:
        """The refs of its entries: what to wait for after the commit."""
        return [e.ref for e in self._entries]

    def receive(self, m: Movement) -> None:
        """An inflow: its entry, and the fund that disbursements will draw on."""
        self._entries.append(log.NewEntry(m.kind, m.ref, _entry(m)))
        self._inflows.append(m)

    def reverse(
        self, fund: CharityFund, kind: str, ref: str, at: datetime, data: dict[str, Any]
    ) -> int:
        """Take back a locked fund's money (a refund); refused (409) if it was spent.
        Returns the amount taken."""
        if fund.allocated > 0:
            raise conflict(
                "charity_funds_disbursed",
                "the charity already spent this money; it cannot be taken back",
                ref=fund.ref,
            )
        amount = fund.amount
        entry = {
            **data,
            "charity_id": fund.charity_id,
            "session_id": fund.session_id,
            "amount": amount,
            "currency": fund.currency,
            # Its index, or, while the sequencer has not reached it yet, its ref.
            "reverses": log.IndexOf(fund.ref) if fund.entry_index is None else fund.entry_index,
            "at": rfc3339(at),
        }
        self._entries.append(log.NewEntry(kind, ref, entry))
        fund.amount = 0
        return amount

    async def write(self, s: AsyncSession) -> list[str]:
        """Queue every entry for the log and open the funds; returns the refs to pass to
        `sequencer.sequence` once this transaction commits."""
        await log.queue(s, self._entries)
        rows = [
            {
                "charity_id": m.charity_id,
                "kind": m.kind,
                "ref": m.ref,
                "session_id": m.session_id,
                "source_ref": m.source_ref,
                "donor_id": m.donor_id,
                "donor_salt": m.donor_salt,
                "amount": m.amount,
                "allocated": 0,
                "currency": m.currency,
                "received_at": m.at,
                "held": _waits_for_delivery(m),
            }
            for m in self._inflows
        ]
        await insert_rows(s, "charity_funds", FUND_COLUMNS, rows)
        return self.refs


def _waits_for_delivery(m: Movement) -> bool:
    """A pledge, or a sponsor's match of one, is spendable once its order completes."""
    return m.kind == "pledge" or (m.source_ref or "").startswith("pledge:")


async def pledges_kept(s: AsyncSession, order_ids: Sequence[str]) -> None:
    """Completed orders' pledges (and their matches) may now be spent."""
    if order_ids:
        refs = [f"pledge:{i}" for i in order_ids]
        await s.execute(
            text(
                "UPDATE charity_funds SET held = false"
                " WHERE held AND (ref = ANY(:r) OR source_ref = ANY(:r))"
            ),
            {"r": refs},
        )


# --- Inflows: a settled batch's pledges, a paid gift ----------------------------------------


async def pledges_received(
    s: AsyncSession, journal: Journal, pledges: Sequence[Pledge]
) -> OutboxRows:
    """A settlement batch's pledges reach their charities: each is logged, opens a fund,
    is matched by its room's sponsors, and adds to its room's sums (rooms in id order)."""
    pledges = [p for p in pledges if p.amount > 0]
    if not pledges:
        return []
    # = ANY(array), not IN (…): one prepared statement whatever the batch's size.
    found = await s.execute(
        text("SELECT ref FROM charity_funds WHERE ref = ANY(:r)"), {"r": [p.ref for p in pledges]}
    )
    done = {r[0] for r in found}
    by_room: dict[tuple[str, str], list[Movement]] = defaultdict(list)
    for p in pledges:
        if p.ref in done:  # settled once already
            continue
        m = Movement(
            kind="pledge",
            ref=p.ref,
            charity_id=p.charity_id,
            session_id=p.session_id,
            amount=p.amount,
            currency=p.currency,
            at=p.at,
            data={"order_id": p.order_id},
            donor_id=p.buyer_id,
            donor_salt=new_salt(),
        )
        journal.receive(m)
        by_room[(p.session_id, p.currency)].append(m)
    events: OutboxRows = []
    for (session_id, currency), room in sorted(by_room.items()):
        pledged = sum(m.amount for m in room)
        matched, match_events = await _match(s, journal, session_id, currency, room)
        before, after = await _bump(s, session_id, pledged=pledged, matched=matched)
        events += match_events
        events += await _milestone(s, session_id, before, after, max(m.at for m in room))
    return events


async def gift_received(s: AsyncSession, journal: Journal, m: Movement) -> OutboxRows:
    """A paid gift reaches its charity: logged, a fund, its room's matches and sums. The
    caller posted the ledger transaction."""
    journal.receive(m)
    if m.session_id is None:
        return []
    matched, events = await _match(s, journal, m.session_id, m.currency, [m])
    before, after = await _bump(s, m.session_id, donated=m.amount, matched=matched)
    return events + await _milestone(s, m.session_id, before, after, m.at)


def energy_received(journal: Journal, m: Movement) -> None:
    """Sponsor money a viewer's energy points released: logged, a fund (no matching)."""
    journal.receive(m)


# --- Outflows: a refunded order's pledge ---------------------------------------------------


async def pledge_reversed(
    s: AsyncSession, journal: Journal, order_id: str, session_id: str, at: datetime
) -> OutboxRows:
    """A refunded order's pledge leaves its charity, with the matches it drew; refused
    (409 `charity_funds_disbursed`) if the charity already spent it."""
    ref = f"pledge:{order_id}"
    fund = await s.scalar(select(CharityFund).where(CharityFund.ref == ref).with_for_update())
    if fund is None or fund.amount == 0:
        return []
    amount = journal.reverse(
        fund, "pledge_reversal", f"pledge_reversal:{order_id}", at, {"order_id": order_id}
    )
    matched, events = await _unmatch(s, journal, ref, at)
    await _bump(s, session_id, pledged=-amount, matched=-matched)
    return events


# --- Sponsor matches -----------------------------------------------------------------------


async def _match(
    s: AsyncSession, journal: Journal, session_id: str, currency: str, sources: list[Movement]
) -> tuple[int, OutboxRows]:
    """Every active match of the room adds its ratio of each source, up to what is left of
    its cap; each addition is its own ledger transaction and log entry, naming the source's
    entry. Returns (matched, events)."""
    matches = (
        (
            await s.execute(
                select(Match)
                .where(
                    Match.session_id == session_id,
                    Match.currency == currency,
                    Match.matched < Match.cap,
                )
                .order_by(Match.created_at, Match.id)
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    if not matches:
        return 0, []
    total, events = 0, []
    txns: list[tuple[str, str, str | None, str, Sequence[ledger.Entry]]] = []
    for source in sources:
        for match in matches:
            add = min(
                Money(source.amount, source.currency).bps(match.ratio_bps).amount,
                match.cap - match.matched,
            )
            if add <= 0:
                continue
            ref = f"match:{match.id}:{source.ref}"
            txns.append(
                (
                    "match",
                    ref,
                    None,
                    currency,
                    [
                        ledger.Entry(match_sponsor(match), -add),
                        ledger.Entry(ledger.charity_payable(source.charity_id), add),
                    ],
                )
            )
            journal.receive(
                Movement(
                    kind="match",
                    ref=ref,
                    charity_id=source.charity_id,
                    session_id=session_id,
                    amount=add,
                    currency=currency,
                    at=source.at,
                    data={
                        "match_id": match.id,
                        "sponsor_name": match.sponsor_name,
                        "matches": log.IndexOf(source.ref),
                    },
                    source_ref=source.ref,
                )
            )
            match.matched += add
            total += add
            events.append(_match_event(match, add, source.at))
    await ledger.post_many(s, txns)
    return total, events


async def _unmatch(
    s: AsyncSession, journal: Journal, source_ref: str, at: datetime
) -> tuple[int, OutboxRows]:
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
        match_id = fund.ref.split(":", 2)[1]
        match = await s.get(Match, match_id, with_for_update=True)
        assert match is not None
        ref = f"match_reversal:{match_id}:{source_ref}"
        amount = journal.reverse(fund, "match_reversal", ref, at, {"match_id": match_id})
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
        match.matched -= amount
        total += amount
        events.append(_match_event(match, -amount, at))
    return total, events


def _match_event(match: Match, amount: int, at: datetime) -> Topical:
    return (
        f"session:{match.session_id}",
        MatchEvent(
            session_id=match.session_id,
            match_id=match.id,
            amount=amount,
            currency=match.currency,
            sponsor_name=match.sponsor_name,
            remaining=match.cap - match.matched,
            at=rfc3339(at),
        ),
    )


# --- A room's running sums and its goal -----------------------------------------------


async def _bump(
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


async def _milestone(
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
    event = Milestone(
        session_id=session_id,
        campaign_id=campaign.id,
        unit_name=campaign.unit_name,
        funded_units=now,
        goal_units=campaign.goal_units,
        at=rfc3339(at),
    )
    return [(f"session:{session_id}", event)]
