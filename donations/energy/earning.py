"""Earning energy points: the rules of `energy_rules` applied to what happened.

Purchases and donations earn inside the transaction that settles them (a refund takes the
points back in its own); watch minutes and likes arrive in batches from the live gateway
(`live.watch`), one job per process per minute. Caps are read from the points book under
the users' locks, so they hold across processes and retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.outbox import service as outbox
from core.clock import utcnow
from core.services import Services
from core.settings import get_settings
from donations.energy import points
from donations.energy.rules import Rules, rules_of

OutboxRows = points.OutboxRows


async def _publish_changes(
    s: AsyncSession, changes: dict[str, tuple[str, int]], now: datetime
) -> OutboxRows:
    """A `points` event per user changed: (kind, delta) -> the new balance on `me`."""
    standing = await points.standings(s, sorted(changes), now)
    return [
        points.points_event(user_id, kind, delta, standing[user_id], now)
        for user_id, (kind, delta) in sorted(changes.items())
    ]


def _capped(want: int, *caps: tuple[int, int]) -> int:
    """`want`, cut to what each (cap, already) pair leaves."""
    for cap, already in caps:
        want = min(want, cap - already)
    return max(0, want)


# --- Purchases (the settle and refund flows call these) -----------------------------------


@dataclass(frozen=True, slots=True)
class Purchase:
    order_id: str
    session_id: str
    buyer_id: str
    total: int
    currency: str


async def for_purchases(
    s: AsyncSession, purchases: Sequence[Purchase], now: datetime
) -> OutboxRows:
    """Points for a settlement batch's purchases, capped per buyer and day; the buyers'
    locks are taken at once, in one order (docs/architecture.md)."""
    if not purchases:
        return []
    rules = rules_of_current()
    users = sorted({p.buyer_id for p in purchases})
    await points.lock_users(s, users)
    today = await points.earned_sums(s, "purchase", users, day=now.date())
    awards = []
    for p in purchases:
        rate = rules.spend_rate(p.currency)
        if rate <= 0:
            continue
        already = today.get((p.buyer_id, None), 0)
        got = _capped(p.total // rate, (rules.purchase_max_points_per_day, already))
        if got:
            today[(p.buyer_id, None)] = already + got
            awards.append(
                points.Award(p.buyer_id, "purchase", f"purchase:{p.order_id}", got, p.session_id)
            )
    changes: dict[str, tuple[str, int]] = {}
    for a, _ in await points.award(s, awards, rules, now):
        kind, delta = changes.get(a.user_id, ("purchase", 0))
        changes[a.user_id] = (kind, delta + a.points)
    return await _publish_changes(s, changes, now) if changes else []


async def purchase_refunded(s: AsyncSession, order_id: str, now: datetime) -> OutboxRows:
    """A refunded purchase takes its points back (a debt where they were spent)."""
    taken = await points.claw_back(s, f"purchase:{order_id}", now)
    if taken is None:
        return []
    return await _publish_changes(s, {taken[0]: ("clawback", -taken[1])}, now)


# --- Gifts (the payment flow calls this when a gift is paid) ------------------------------------


async def for_donation(
    s: AsyncSession,
    donor_id: str,
    donation_id: str,
    session_id: str | None,
    amount: int,
    currency: str,
    now: datetime,
) -> OutboxRows:
    rules = rules_of_current()
    rate = rules.donate_rate(currency)
    if rate <= 0:
        return []
    await points.lock_users(s, [donor_id])
    today = await points.earned_sums(s, "donation", [donor_id], day=now.date())
    got = _capped(
        amount // rate, (rules.donation_max_points_per_day, today.get((donor_id, None), 0))
    )
    award = points.Award(donor_id, "donation", f"donation:{donation_id}", got, session_id)
    if not await points.award(s, [award], rules, now):
        return []
    return await _publish_changes(s, {donor_id: ("donation", got)}, now)


# --- Watching and liking, in batches from the live gateway --------------------------------


async def award_activity(
    services: Services, batch: dict[str, Any], now: datetime | None = None
) -> int:
    """One process's minute: `{"id", "slot", "watch": [[user, session, device]], "likes":
    [[user, session, count]]}`. Idempotent: every award's reference names the minute (a
    watch) or the batch (likes). Returns the points issued."""
    rules = rules_of(services.settings)
    now = now or utcnow()
    slot = int(batch["slot"])
    watch = [
        (str(u), str(sid), str(dev) if dev else None) for u, sid, dev in batch.get("watch", [])
    ]
    likes = [(str(u), str(sid), int(n)) for u, sid, n in batch.get("likes", [])]
    users = sorted({u for u, _, _ in watch} | {u for u, _, _ in likes})
    if not users:
        return 0
    devices = sorted({d for _, _, d in watch if d})
    async with services.db.transaction() as s:
        # Users and devices: caps read below hold until this transaction commits.
        await points.lock_users(s, [*users, *("device:" + d for d in devices)])
        awards = await _watch_awards(s, rules, watch, slot, now)
        awards += await _like_awards(s, rules, likes, str(batch["id"]), now)
        issued = await points.award(s, awards, rules, now)
        changes: dict[str, tuple[str, int]] = {}
        for a, _ in issued:
            kind, delta = changes.get(a.user_id, (a.kind, 0))
            changes[a.user_id] = (kind, delta + a.points)
        events = await _publish_changes(s, changes, now)
        await outbox.add(s, events)
    if events:
        await outbox.relay(services)
    return sum(a.points for a, _ in issued)


async def _watch_awards(
    s: AsyncSession,
    rules: Rules,
    watch: list[tuple[str, str, str | None]],
    slot: int,
    now: datetime,
) -> list[points.Award]:
    if not watch or rules.watch_points_per_minute <= 0:
        return []
    users = sorted({u for u, _, _ in watch})
    per = rules.watch_points_per_minute
    by_session = await points.earned_sums(s, "watch", users, session=True)
    by_day = await points.earned_sums(s, "watch", users, day=now.date())
    paid = {
        r[0]
        for r in await s.execute(
            text(
                "SELECT user_id FROM points_transactions"
                " WHERE kind = 'watch' AND slot = :slot AND user_id = ANY(:u)"
            ),
            {"slot": slot, "u": users},
        )
    }
    devices = sorted({d for _, _, d in watch if d})
    on_device: dict[str, int] = {}
    if devices:
        for dev, n in await s.execute(
            text(
                "SELECT device, count(*) FROM points_transactions"
                " WHERE kind = 'watch' AND slot = :slot AND device = ANY(:d) GROUP BY device"
            ),
            {"slot": slot, "d": devices},
        ):
            on_device[dev] = int(n)
    awards = []
    for user, session, device in sorted(watch):
        if user in paid:
            continue  # one minute pays once, whatever the sockets, rooms or processes
        if device and on_device.get(device, 0) >= rules.device_accounts_per_minute:
            continue
        got = _capped(
            per,
            (rules.watch_max_minutes_per_session * per, by_session.get((user, session), 0)),
            (rules.watch_max_minutes_per_day * per, by_day.get((user, None), 0)),
        )
        if not got:
            continue
        paid.add(user)
        if device:
            on_device[device] = on_device.get(device, 0) + 1
        by_session[(user, session)] = by_session.get((user, session), 0) + got
        by_day[(user, None)] = by_day.get((user, None), 0) + got
        awards.append(
            points.Award(user, "watch", f"watch:{user}:{slot}", got, session, device, slot)
        )
    return awards


async def _like_awards(
    s: AsyncSession, rules: Rules, likes: list[tuple[str, str, int]], batch_id: str, now: datetime
) -> list[points.Award]:
    if not likes:
        return []
    users = sorted({u for u, _, _ in likes})
    by_session = await points.earned_sums(s, "like", users, session=True)
    by_day = await points.earned_sums(s, "like", users, day=now.date())
    awards = []
    for user, session, count in sorted(likes):
        got = _capped(
            count // rules.likes_per_point,
            (rules.like_max_points_per_session, by_session.get((user, session), 0)),
            (rules.like_max_points_per_day, by_day.get((user, None), 0)),
        )
        if not got:
            continue
        by_session[(user, session)] = by_session.get((user, session), 0) + got
        by_day[(user, None)] = by_day.get((user, None), 0) + got
        awards.append(points.Award(user, "like", f"like:{batch_id}:{user}:{session}", got, session))
    return awards


# --- Rules ------------------------------------------------------------------------------


def rules_of_current() -> Rules:
    """The process's rules, for hooks (which get a database session, not the services)."""
    return rules_of(get_settings())
