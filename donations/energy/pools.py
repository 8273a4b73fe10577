"""Sponsor pools: a sponsor's money for a charity (or a campaign, or one room), turned into a
donation as users redeem energy points, at a fixed rate and never beyond a cap.

Redeeming is one transaction: the points move from the user's lots into `pool:{id}` in
the points book, the sponsor's money moves from `sponsor_pool:{id}` to the charity in the
money ledger, the transparency log gains one entry (a charity fund the receipt points at),
and the room's ticker and the user's `me` topic get their events. How much of the cap is
used is read from the money ledger under the pool's row lock, never kept as a counter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.charities.models import Campaign
from commerce.ledger import service as ledger
from commerce.outbox import service as outbox
from commerce.sessions.models import LiveSession
from core.auth import Principal
from core.clock import rfc3339, utcnow
from core.db import Database
from core.errors import bad_request, conflict, not_found
from core.ids import new_id
from core.models import User
from core.services import Services
from donations.charity import sequencer
from donations.charity import service as charity
from donations.energy import points
from donations.energy.events import Energy
from donations.energy.models import PointsPool, PointsRedemption
from donations.energy.schemas import PoolOut, Redeemed, RedemptionOut


def pool_money_account(pool: PointsPool) -> ledger.Account:
    return ledger.Account(f"sponsor_pool:{pool.id}", "sponsor_payable", pool.sponsor_id)


async def used(s: AsyncSession, pool: PointsPool) -> int:
    """Money paid out of the pool so far, from the ledger."""
    return -await ledger.balance(s, pool_money_account(pool).code)


def money_for(pool: PointsPool, pts: int) -> int:
    """What `pts` points are worth in the pool's money: the rate, rounded down."""
    return pts * pool.rate_amount // pool.rate_points


def pool_json(pool: PointsPool, used_amount: int, unit: Campaign | None = None) -> PoolOut:
    out: PoolOut = {
        "id": pool.id,
        "sponsor_id": pool.sponsor_id,
        "sponsor_name": pool.sponsor_name,
        "charity_id": pool.charity_id,
        "campaign_id": pool.campaign_id,
        "session_id": pool.session_id,
        "currency": pool.currency,
        "rate": {"points": pool.rate_points, "amount": pool.rate_amount},
        "cap": pool.cap,
        "used": used_amount,
        "remaining": pool.cap - used_amount,
        "created_at": rfc3339(pool.created_at),
    }
    if unit is not None:
        out["unit_name"] = unit.unit_name
        out["unit_cost"] = unit.unit_cost
    return out


def redemption_json(
    r: PointsRedemption, entry_index: int | None = None, unit: Campaign | None = None
) -> RedemptionOut:
    """A redemption; as first answered, also its log entry and what its money buys."""
    out: RedemptionOut = {
        "id": r.id,
        "pool_id": r.pool_id,
        "session_id": r.session_id,
        "charity_id": r.charity_id,
        "points": r.points,
        "amount": r.amount,
        "currency": r.currency,
        "idempotency_key": r.idempotency_key,
        "created_at": rfc3339(r.created_at),
    }
    if entry_index is not None:
        out["entry_index"] = entry_index
    if unit is not None:
        out["unit_name"] = unit.unit_name
        out["unit_cost"] = unit.unit_cost
    return out


async def _room(s: AsyncSession, pool: PointsPool, session_id: str | None) -> str | None:
    """The room whose ticker shows this redemption: the pool's, or the one the user is in
    when it gives to the pool's charity."""
    if pool.session_id is not None:
        if session_id is not None and session_id != pool.session_id:
            raise bad_request("invalid_field", "this pool belongs to another room", "session_id")
        return pool.session_id
    if session_id is None:
        return None
    live = await s.get(LiveSession, session_id)
    if live is None:
        raise not_found("session", session_id)
    if live.charity_id != pool.charity_id:
        raise bad_request("invalid_field", "this room gives to another charity", "session_id")
    if pool.campaign_id is not None and live.campaign_id != pool.campaign_id:
        raise bad_request("invalid_field", "this room funds another campaign", "session_id")
    return session_id


async def redeem(
    services: Services,
    principal: Principal,
    pool_id: str,
    pts: int,
    session_id: str | None,
    idempotency_key: str,
    now: datetime | None = None,
) -> tuple[Redeemed, bool]:
    """Turn points into the sponsor's money for the charity. Same key and body: the same
    redemption (200); same key, other body: 409 `idempotency_key_reused`."""
    now = now or utcnow()
    user_id = principal.user_id
    async with services.db.transaction() as s:
        await points.lock_users(s, [user_id])
        prior = await s.scalar(
            select(PointsRedemption).where(
                PointsRedemption.user_id == user_id,
                PointsRedemption.idempotency_key == idempotency_key,
            )
        )
        if prior is not None:
            if (prior.pool_id, prior.points) != (pool_id, pts) or (
                session_id is not None and prior.session_id != session_id
            ):
                raise conflict(
                    "idempotency_key_reused",
                    "this idempotency key was used for a different redemption",
                    redemption_id=prior.id,
                )
            # The same redemption, with the balance as it is now.
            now_st = await points.standing(s, user_id, now)
            repeat: Redeemed = {
                "redemption": redemption_json(prior),
                "balance": now_st.balance,
                "redeemable": max(0, now_st.redeemable),
            }
            return repeat, False
        pool = await s.get(PointsPool, pool_id, with_for_update=True)
        if pool is None:
            raise not_found("pool", pool_id)
        room = await _room(s, pool, session_id)
        amount = money_for(pool, pts)
        if amount <= 0:
            raise bad_request(
                "too_few_points",
                f"{pool.rate_points} points are worth {pool.rate_amount}; redeem more",
                "points",
            )
        left = pool.cap - await used(s, pool)
        if amount > left:
            raise conflict(
                "pool_exhausted",
                "the sponsor's pool has not enough left for this redemption",
                remaining=left,
                max_points=left * pool.rate_points // pool.rate_amount,
            )
        rid = new_id("rdm")
        _, st = await points.spend(
            s, user_id, pts, points.pool_account(pool.id), "redeem", f"redeem:{rid}", now, room
        )
        ref = f"energy:{rid}"
        await ledger.post(
            s,
            "energy",
            ref,
            pool.currency,
            [
                ledger.Entry(pool_money_account(pool), -amount),
                ledger.Entry(ledger.charity_payable(pool.charity_id), amount),
            ],
        )
        campaign = await s.get(Campaign, pool.campaign_id) if pool.campaign_id else None
        if campaign is None and room is not None:
            campaign = await s.scalar(
                select(Campaign)
                .join(LiveSession, LiveSession.campaign_id == Campaign.id)
                .where(LiveSession.id == room)
            )
        journal = charity.Journal()
        charity.energy_received(
            journal,
            charity.Movement(
                kind="energy",
                ref=ref,
                charity_id=pool.charity_id,
                session_id=room,
                amount=amount,
                currency=pool.currency,
                at=now,
                data={
                    "pool_id": pool.id,
                    "sponsor_name": pool.sponsor_name,
                    "points": pts,
                    "rate": {"points": pool.rate_points, "amount": pool.rate_amount},
                },
                donor_id=user_id,
                donor_salt=charity.new_salt(),
            ),
        )
        logged = await journal.write(s)
        inserted = await s.scalar(
            pg_insert(PointsRedemption)
            .values(
                id=rid,
                user_id=user_id,
                idempotency_key=idempotency_key,
                pool_id=pool.id,
                session_id=room,
                charity_id=pool.charity_id,
                points=pts,
                amount=amount,
                currency=pool.currency,
            )
            .returning(PointsRedemption.created_at)
        )
        redemption = await s.get(PointsRedemption, rid)
        assert redemption is not None and inserted is not None
        user = await s.get(User, user_id)
        events: points.OutboxRows = [points.points_event(user_id, "redeem", -pts, st, now)]
        if room is not None:
            event = Energy(
                session_id=room,
                redemption_id=rid,
                points=pts,
                amount=amount,
                currency=pool.currency,
                display_name=user.display_name if user else "",
                sponsor_name=pool.sponsor_name,
                at=rfc3339(now),
                unit_name=campaign.unit_name if campaign else None,
                unit_cost=campaign.unit_cost if campaign else None,
            )
            events.append((f"session:{room}", event))
        await outbox.add(s, events)
        balance, redeemable = st.balance, max(0, st.redeemable)
    # Committed: its entry's index once the sequencer has given it one (left out of the
    # answer, as on a repeat, if the database went away in between).
    entry_index = (await sequencer.sequence(services, logged)).get(ref)
    await outbox.deliver(services)
    out: Redeemed = {
        "redemption": redemption_json(redemption, entry_index, campaign),
        "balance": balance,
        "redeemable": redeemable,
    }
    return out, True


async def session_energy(db: Database, session_id: str) -> dict[str, Any]:
    """A room's energy so far (for a cold rebuild of its ticker): points and money."""
    async with db.reader() as s:
        row = (
            await s.execute(
                text(
                    "SELECT coalesce(sum(points), 0), coalesce(sum(amount), 0), count(*)"
                    " FROM points_redemptions WHERE session_id = :s"
                ),
                {"s": session_id},
            )
        ).one()
    return {"points": int(row[0]), "amount": int(row[1]), "redemptions": int(row[2])}
