"""A sale's pledge reaching the charity (and its refund), joined to commerce's settlement.

Registered with `commerce.hooks` when donations is imported: settlement and refunds call
it inside their own transaction, so the pledge's log entry, fund, matches and milestone
commit (or roll back) with the order's ledger postings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from commerce import hooks
from donations.charity import funds
from donations.charity.models import CharityFund
from donations.transparency import log


async def on_pledges(
    s: AsyncSession, movements: Sequence[hooks.PledgeMovement]
) -> funds.OutboxRows:
    events = await _received(s, [m for m in movements if m.kind == "pledge"])
    for m in movements:
        if m.kind == "pledge_reversal":
            events += await _reversed(s, m)
    return events


async def _received(s: AsyncSession, movements: list[hooks.PledgeMovement]) -> funds.OutboxRows:
    """A settlement batch's pledges: logged under one lock, funds opened in one insert, and
    each room's sums, matches and milestone handled once per room."""
    if not movements:
        return []
    refs = [f"pledge:{m.order_id}" for m in movements]
    # = ANY(array), not IN (…): one prepared statement whatever the batch's size.
    found = await s.execute(text("SELECT ref FROM charity_funds WHERE ref = ANY(:r)"), {"r": refs})
    done = {r[0] for r in found}
    fresh = [m for m, ref in zip(movements, refs, strict=True) if ref not in done]
    if not fresh:
        return []  # settled once already
    received = [
        funds.Movement(
            kind="pledge",
            ref=f"pledge:{m.order_id}",
            charity_id=m.charity_id,
            session_id=m.session_id,
            amount=m.amount,
            currency=m.currency,
            at=m.at,
            data={"order_id": m.order_id},
            donor_id=m.buyer_id,
            donor_salt=funds.new_salt(),
        )
        for m in fresh
    ]
    appended = await funds.receive_many(s, received)
    Opened = tuple[funds.Movement, log.Appended]
    by_room: dict[tuple[str, str], list[Opened]] = defaultdict(list)
    for m, r, a in zip(fresh, received, appended, strict=True):
        by_room[(m.session_id, m.currency)].append((r, a))
    events: funds.OutboxRows = []
    for (session_id, currency), room in by_room.items():
        pledged = sum(r.amount for r, _ in room)
        matched = 0
        if await funds.has_active_matches(s, session_id, currency):
            for r, a in room:
                added, match_events = await funds.apply_matches(s, r, a.index, r.at)
                matched += added
                events += match_events
        before, _ = await funds.bump_session(s, session_id, pledged=pledged, matched=matched)
        last = max(r.at for r, _ in room)
        events += await funds.milestone(s, session_id, before, before + pledged + matched, last)
    return events


async def _reversed(s: AsyncSession, m: hooks.PledgeMovement) -> funds.OutboxRows:
    ref = f"pledge:{m.order_id}"
    fund = await s.scalar(select(CharityFund).where(CharityFund.ref == ref).with_for_update())
    if fund is None or fund.amount == 0:
        return []
    amount = fund.amount
    await funds.reverse(
        s, fund, "pledge_reversal", f"pledge_reversal:{m.order_id}", m.at, {"order_id": m.order_id}
    )
    matched, events = await funds.reverse_matches(s, ref, m.at)
    await funds.bump_session(s, m.session_id, pledged=-amount, matched=-matched)
    return events


def register() -> None:
    hooks.on_pledges(on_pledges)
