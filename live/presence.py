"""Connections per user (and per client address), counted across every process and right
after a process dies.

Each process keeps its count in a field of the user's hash; a field counts only while its
process's heartbeat key lives, so a killed process's sockets stop counting within seconds.
(A room's viewers are counted the same way, by the ticker: see `live.ticker`.)
"""

from __future__ import annotations

from core.redis import Client, Keys
from live import limits

USER_TTL_MS = 24 * 3600 * 1000


def _user_key(keys: Keys, user_id: str) -> str:
    return keys("live", "conns", user_id)


async def acquire(
    redis: Client,
    keys: Keys,
    owner: str,
    user_id: str,
    limit: int = limits.MAX_CONNECTIONS_PER_USER,
) -> bool:
    """Count one more socket of `user_id` (or of `addr:…`) here, unless that puts it over
    the limit. Counted first and checked after, so sockets opening at once on several
    processes can only be refused too eagerly, never let past the limit."""
    key = _user_key(keys, user_id)
    async with redis.pipeline(transaction=False) as pipe:  # in order; counted, then read
        pipe.hincrby(key, owner, 1)
        pipe.pexpire(key, USER_TTL_MS)
        pipe.hgetall(key)
        fields: dict[bytes, bytes] = (await pipe.execute())[2]
    others = [f for f in fields if f != owner.encode()]
    alive = []
    for f in others:
        alive.append(bool(await redis.exists(keys("live", "proc", f.decode(errors="replace")))))
    dead = [f.decode(errors="replace") for f, ok in zip(others, alive, strict=True) if not ok]
    if dead:
        await redis.hdel(key, *dead)  # type: ignore[misc]
    total = int(fields.get(owner.encode(), 0)) + sum(
        int(fields[f]) for f, ok in zip(others, alive, strict=True) if ok
    )
    if total > limit:
        await release(redis, keys, owner, user_id)
        return False
    return True


async def release(redis: Client, keys: Keys, owner: str, user_id: str) -> None:
    key = _user_key(keys, user_id)
    if await redis.hincrby(key, owner, -1) <= 0:  # type: ignore[misc]
        await redis.hdel(key, owner)  # type: ignore[misc]
