"""A sale's pledge reaching the charity (and its refund), joined to commerce's settlement.

Registered with `commerce.hooks` when donations is imported: settlement and refunds call
it inside their own transaction, so the pledge's log entry, fund, matches and milestone
commit (or roll back) with the order's ledger postings.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce import hooks
from donations import funds
from donations.models import CharityFund


async def on_pledges(
    s: AsyncSession, movements: Sequence[hooks.PledgeMovement]
) -> funds.OutboxRows:
    events: funds.OutboxRows = []
    for m in movements:
        if m.kind == "pledge":
            events += await _received(s, m)
        elif m.kind == "pledge_reversal":
            events += await _reversed(s, m)
    return events


async def _received(s: AsyncSession, m: hooks.PledgeMovement) -> funds.OutboxRows:
    ref = f"pledge:{m.order_id}"
    if await s.scalar(select(CharityFund.id).where(CharityFund.ref == ref)) is not None:
        return []  # settled once already
    fund, appended = await funds.receive(
        s,
        funds.Movement(
            kind="pledge",
            ref=ref,
            charity_id=m.charity_id,
            session_id=m.session_id,
            amount=m.amount,
            currency=m.currency,
            at=m.at,
            data={"order_id": m.order_id},
            donor_id=m.buyer_id,
            donor_salt=funds.new_salt(),
        ),
    )
    before, _ = await funds.bump_session(s, m.session_id, pledged=m.amount)
    matched, events = await funds.apply_matches(s, fund, appended.index, m.at)
    if matched:
        await funds.bump_session(s, m.session_id, matched=matched)
    events += await funds.milestone(s, m.session_id, before, before + m.amount + matched, m.at)
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
