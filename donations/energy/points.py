"""The energy points book: earning, spending oldest-expiring lots first, clawing back,
expiring, and reading a user's balance.

Every change is one balanced points transaction (postings sum to zero) with a unique
reference, so a retried job or a duplicate hook pays once. Changes of one user serialise
on a transaction-scoped advisory lock, so a cap or a balance read under it holds until
the change commits. Callers pass `now`, so tests move time without sleeping.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import rfc3339
from core.db import insert_rows
from core.errors import conflict
from core.events import Topical
from core.ids import new_id
from donations.energy.events import Points
from donations.energy.models import PointsTransaction
from donations.energy.rules import Rules
from donations.energy.schemas import Lot, PointsMove

EXPIRED = "expired"
EARNING = ("watch", "like", "purchase", "donation")

OutboxRows = list[Topical]


def user_account(user_id: str) -> str:
    return f"user:{user_id}"


def issued(source: str) -> str:
    return f"issued:{source}"


def pool_account(pool_id: str) -> str:
    return f"pool:{pool_id}"


@dataclass(frozen=True, slots=True)
class Award:
    user_id: str
    kind: str  # one of EARNING
    reference: str
    points: int
    session_id: str | None = None
    device: str | None = None
    slot: int | None = None


async def lock_users(s: AsyncSession, user_ids: Iterable[str]) -> None:
    """Serialise points changes per user until this transaction ends. One statement takes
    a whole batch's locks, in the order of their lock keys, which every caller shares:
    no two transactions can wait on each other."""
    keys = sorted({"points:" + uid for uid in user_ids})
    if not keys:
        return
    await s.execute(
        text(
            "SELECT count(pg_advisory_xact_lock(h)) FROM"
            " (SELECT hashtextextended(k, 0) AS h FROM unnest(CAST(:k AS text[])) AS k"
            "  ORDER BY h) AS ordered"
        ),
        {"k": keys},
    )


async def earned_sums(
    s: AsyncSession, kind: str, user_ids: Sequence[str], *, day: Any = None, session: bool = False
) -> dict[tuple[str, str | None], int]:
    """Points already earned of `kind` per (user, session) — today's when `day` is given
    (clawbacks subtract), summed over sessions unless `session`."""
    if not user_ids:
        return {}
    where = "user_id = ANY(:u) AND kind IN (:k, :ck)"
    params: dict[str, Any] = {"u": list(user_ids), "k": kind, "ck": "clawback_" + kind}
    if day is not None:
        where += " AND day = :d"
        params["d"] = day
    group = "user_id, session_id" if session else "user_id, NULL::varchar"
    rows = await s.execute(
        text(f"SELECT {group}, sum(points) FROM points_transactions WHERE {where} GROUP BY 1, 2"),  # noqa: S608 - fixed fragments
        params,
    )
    return {(r[0], r[1]): int(r[2]) for r in rows}


async def award(
    s: AsyncSession, awards: Sequence[Award], rules: Rules, now: datetime
) -> list[tuple[Award, str]]:
    """Issue points (each with its own lot); an award whose reference was paid before is
    skipped. Returns the awards issued with their transaction ids."""
    awards = [a for a in awards if a.points > 0]
    if not awards:
        return []
    day = now.date()
    rows = [
        {
            "id": new_id("ptx"),
            "kind": a.kind,
            "reference": a.reference,
            "user_id": a.user_id,
            "session_id": a.session_id,
            "device": a.device,
            "slot": a.slot,
            "day": day,
            "points": a.points,
            "at": now,
        }
        for a in awards
    ]
    result = await s.execute(
        insert(PointsTransaction)
        .on_conflict_do_nothing(index_elements=[PointsTransaction.reference])
        .returning(PointsTransaction.reference, PointsTransaction.id),
        rows,
    )
    fresh = {r[0]: r[1] for r in result}
    issued_now = [(a, fresh[a.reference]) for a in awards if a.reference in fresh]
    if not issued_now:
        return []
    expires = now + timedelta(seconds=rules.points_ttl_s)
    lots: list[dict[str, Any]] = []
    postings: list[dict[str, Any]] = []
    for a, txn_id in issued_now:
        lot_id = new_id("lot")
        lots.append(
            {
                "id": lot_id,
                "user_id": a.user_id,
                "transaction_id": txn_id,
                "source": a.kind,
                "points": a.points,
                "earned_at": now,
                "expires_at": expires,
            }
        )
        postings += [
            {
                "transaction_id": txn_id,
                "account": issued(a.kind),
                "lot_id": None,
                "amount": -a.points,
            },
            {
                "transaction_id": txn_id,
                "account": user_account(a.user_id),
                "lot_id": lot_id,
                "amount": a.points,
            },
        ]
    await insert_rows(s, "points_lots", LOT_COLUMNS, lots)
    await _post(s, postings)
    return issued_now


LOT_COLUMNS = (
    ("id", "text"),
    ("user_id", "text"),
    ("transaction_id", "text"),
    ("source", "text"),
    ("points", "bigint"),
    ("earned_at", "timestamptz"),
    ("expires_at", "timestamptz"),
)
POSTING_COLUMNS = (
    ("transaction_id", "text"),
    ("account", "text"),
    ("lot_id", "text"),
    ("amount", "bigint"),
)


async def _post(s: AsyncSession, postings: list[dict[str, Any]]) -> None:
    """Insert postings in one statement (see `core.db.insert_rows`). Not through the ORM
    entity: its bulk insert leaves out None values and groups rows by the columns they
    have, so postings alternating with and without a lot went one by one."""
    await insert_rows(s, "points_postings", POSTING_COLUMNS, postings)


@dataclass(frozen=True, slots=True)
class Standing:
    balance: int  # every posting of the user's account (negative after a spent clawback)
    redeemable: int  # unexpired lots plus any debt; nothing can be redeemed while <= 0
    lots: list[Lot]


async def standing(s: AsyncSession, user_id: str, now: datetime) -> Standing:
    return (await standings(s, [user_id], now))[user_id]


async def standings(s: AsyncSession, user_ids: Sequence[str], now: datetime) -> dict[str, Standing]:
    """Several users' points in one query (a settlement batch announces many at once).

    It joins the accounts to their postings and then reads each lot by its key, so the
    work stays proportional to what these users hold whatever plan is cached: with
    `account = ANY(:a)` a generic plan made while the book was small scanned every
    posting and compared it with every account, and a hash join scanned every lot."""
    accounts = {user_account(u): u for u in user_ids}
    rows = (
        await s.execute(
            text(
                "SELECT p.account, p.lot_id AS id, p.left, l.source, l.points, l.earned_at,"
                " l.expires_at"
                " FROM (SELECT pp.account, pp.lot_id, sum(pp.amount) AS left"
                "       FROM unnest(CAST(:a AS text[])) AS a(account)"
                "       JOIN points_postings pp ON pp.account = a.account"
                "       GROUP BY pp.account, pp.lot_id) AS p"
                " LEFT JOIN LATERAL (SELECT source, points, earned_at, expires_at"
                "       FROM points_lots WHERE id = p.lot_id OFFSET 0) AS l ON true"
                " ORDER BY l.expires_at, p.lot_id"
            ),
            {"a": list(accounts)},
        )
    ).all()
    debts: dict[str, int] = {r.account: int(r.left) for r in rows if r.id is None}
    rows = [r for r in rows if r.id is not None and r.left > 0]
    lots: dict[str, list[Lot]] = {a: [] for a in accounts}
    for r in rows:
        lots[r.account].append(
            {
                "id": r.id,
                "source": r.source,
                "points": int(r.points),
                "remaining": int(r.left),
                "earned_at": rfc3339(r.earned_at),
                "expires_at": rfc3339(r.expires_at),
                "expired": r.expires_at <= now,
            }
        )
    out: dict[str, Standing] = {}
    for account, user_id in accounts.items():
        debt = int(debts.get(account) or 0)
        held = lots[account]
        live = sum(lot["remaining"] for lot in held if not lot["expired"])
        total = sum(lot["remaining"] for lot in held) + debt
        out[user_id] = Standing(balance=total, redeemable=live + debt, lots=held)
    return out


async def spend(
    s: AsyncSession,
    user_id: str,
    points: int,
    counter: str,
    kind: str,
    reference: str,
    now: datetime,
    session_id: str | None = None,
) -> tuple[str, Standing]:
    """Take `points` from the user's unexpired lots, the soonest to expire first, into
    `counter`. The caller holds the user's lock. 409 `insufficient_points` otherwise."""
    before = await standing(s, user_id, now)
    if before.redeemable < points:
        raise conflict(
            "insufficient_points",
            f"you can redeem {max(0, before.redeemable)} points now",
            redeemable=max(0, before.redeemable),
            balance=before.balance,
        )
    txn_id = new_id("ptx")
    postings = [{"transaction_id": txn_id, "account": counter, "lot_id": None, "amount": points}]
    need = points
    for lot in before.lots:
        if need == 0:
            break
        if lot["expired"]:
            continue
        take = min(need, lot["remaining"])
        need -= take
        postings.append(
            {
                "transaction_id": txn_id,
                "account": user_account(user_id),
                "lot_id": lot["id"],
                "amount": -take,
            }
        )
    assert need == 0
    await s.execute(
        insert(PointsTransaction).values(
            id=txn_id,
            kind=kind,
            reference=reference,
            user_id=user_id,
            session_id=session_id,
            day=now.date(),
            points=-points,
            at=now,
        )
    )
    await _post(s, postings)
    return txn_id, await standing(s, user_id, now)


async def claw_back(s: AsyncSession, earning_ref: str, now: datetime) -> tuple[str, int] | None:
    """Reverse an award (a refunded order's points): from its lot what is left there, the
    rest as debt on the user's account. Returns (user, points) or None when nothing to do."""
    row = (
        await s.execute(
            text(
                "SELECT t.id, t.kind, t.user_id, t.session_id, t.points, l.id AS lot_id"
                " FROM points_transactions t JOIN points_lots l ON l.transaction_id = t.id"
                " WHERE t.reference = :r"
            ),
            {"r": earning_ref},
        )
    ).one_or_none()
    if row is None:
        return None
    await lock_users(s, [row.user_id])
    left = await s.scalar(
        text(
            "SELECT coalesce(sum(amount), 0) FROM points_postings"
            " WHERE lot_id = :l AND account = :a"
        ),
        {"l": row.lot_id, "a": user_account(row.user_id)},
    )
    points = int(row.points)
    from_lot = min(points, max(0, int(left or 0)))
    txn_id = new_id("ptx")
    inserted = await s.scalar(
        insert(PointsTransaction)
        .values(
            id=txn_id,
            kind="clawback_" + row.kind,
            reference="clawback:" + earning_ref,
            user_id=row.user_id,
            session_id=row.session_id,
            day=now.date(),
            points=-points,
            at=now,
        )
        .on_conflict_do_nothing(index_elements=[PointsTransaction.reference])
        .returning(PointsTransaction.id)
    )
    if inserted is None:
        return None  # clawed back before
    postings = [
        {"transaction_id": txn_id, "account": issued(row.kind), "lot_id": None, "amount": points}
    ]
    if from_lot:
        postings.append(
            {
                "transaction_id": txn_id,
                "account": user_account(row.user_id),
                "lot_id": row.lot_id,
                "amount": -from_lot,
            }
        )
    if points - from_lot:
        postings.append(
            {
                "transaction_id": txn_id,
                "account": user_account(row.user_id),
                "lot_id": None,
                "amount": -(points - from_lot),
            }
        )
    await _post(s, postings)
    return row.user_id, points


async def expire(
    s: AsyncSession, now: datetime, limit: int = 1000
) -> tuple[int, list[tuple[str, int]]]:
    """Lots past their expiry give what is left to `expired`, one transaction per lot
    (reference `expire:{lot}`). Returns (lots looked at, [(user, points)] per lot expired)."""
    candidates = (
        await s.execute(
            text(
                "SELECT l.id, l.user_id FROM points_lots l"
                " WHERE l.expires_at <= :now AND NOT EXISTS ("
                "   SELECT 1 FROM points_transactions t WHERE t.reference = 'expire:' || l.id)"
                " ORDER BY l.expires_at LIMIT :n"
            ),
            {"now": now, "n": limit},
        )
    ).all()
    if not candidates:
        return 0, []
    await lock_users(s, [c.user_id for c in candidates])
    lefts = {
        r[0]: int(r[1])
        for r in await s.execute(
            text(
                "SELECT p.lot_id, sum(p.amount) FROM points_postings p JOIN points_lots l"
                " ON l.id = p.lot_id AND p.account = 'user:' || l.user_id"
                " WHERE p.lot_id = ANY(:ids) GROUP BY p.lot_id"
            ),
            {"ids": [c.id for c in candidates]},
        )
    }
    txns, postings, out = [], [], []
    for c in candidates:
        left = lefts.get(c.id, 0)
        txn_id = new_id("ptx")
        # A spent lot still gets its (empty) marker so the sweep never looks at it again.
        txns.append(
            {
                "id": txn_id,
                "kind": "expire",
                "reference": f"expire:{c.id}",
                "user_id": c.user_id,
                "session_id": None,
                "device": None,
                "slot": None,
                "day": now.date(),
                "points": -max(0, left),
                "at": now,
            }
        )
        if left > 0:
            postings += [
                {
                    "transaction_id": txn_id,
                    "account": user_account(c.user_id),
                    "lot_id": c.id,
                    "amount": -left,
                },
                {"transaction_id": txn_id, "account": EXPIRED, "lot_id": None, "amount": left},
            ]
            out.append((c.user_id, left))
    await s.execute(insert(PointsTransaction).on_conflict_do_nothing(), txns)
    if postings:
        await _post(s, postings)
    return len(candidates), out


async def history(s: AsyncSession, user_id: str, limit: int = 50) -> list[PointsMove]:
    rows = await s.execute(
        text(
            "SELECT id, kind, session_id, points, at FROM points_transactions"
            " WHERE user_id = :u AND points <> 0 ORDER BY at DESC, id DESC LIMIT :n"
        ),
        {"u": user_id, "n": limit},
    )
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "session_id": r.session_id,
            "points": int(r.points),
            "at": rfc3339(r.at),
        }
        for r in rows
    ]


async def unbalanced(s: AsyncSession) -> list[str]:
    """Points transactions whose postings do not sum to zero (always empty, or a bug)."""
    rows = await s.execute(
        text(
            "SELECT t.id FROM points_transactions t"
            " LEFT JOIN points_postings p ON p.transaction_id = t.id"
            " GROUP BY t.id HAVING coalesce(sum(p.amount), 0) <> 0"
        )
    )
    return [r[0] for r in rows]


def points_event(user_id: str, kind: str, delta: int, st: Standing, now: datetime) -> Topical:
    """The `me` topic's event for a change of the user's points."""
    return (
        f"me:{user_id}",
        Points(
            kind=kind, delta=delta, balance=st.balance, redeemable=st.redeemable, at=rfc3339(now)
        ),
    )
