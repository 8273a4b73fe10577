"""Minutes actually watched, and likes, counted server-side and paid in batches.

Once a minute (`watch_minute_s`) each web process samples its sockets: a logged-in socket
that has been subscribed to a room since the previous sample watched that minute. A user's
minute counts once however many sockets, rooms or processes they use (a Redis `SET NX` per
user and minute drops the duplicates before anything is queued; the points book's unique
reference per user and minute is the backstop). Likes are summed per user and room in
memory. The minute's claims go to the worker as one idempotent job per process (job id
`energy:{process}:{minute}`), never a database write per viewer; the job applies the caps
per user, room, day and device (`donations.energy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from typing import Any

from core.redis import UNREACHABLE
from core.services import Services
from donations.energy.rules import Rules, rules_of
from live.connection import Connection

log = logging.getLogger("panen.live")

LIKES_KEPT = 100_000  # (user, room) pairs a minute; beyond, a flood is not worth counting


def device_key(device: str | None) -> str | None:
    """What the points book stores of a device: a digest, never an address."""
    if device is None:
        return None
    return hashlib.sha256(device.encode()).hexdigest()[:32]


class Watch:
    def __init__(self, services: Services, owner: str, connections: set[Connection]) -> None:
        self.services = services
        self.owner = owner
        self.connections = connections
        self.rules: Rules = rules_of(services.settings)
        # (socket, room) -> the sample it was first seen at
        self.seen: dict[tuple[int, str], int] = {}
        self.likes: dict[tuple[str, str], int] = {}
        self.task: asyncio.Task[None] | None = None
        self.batches = 0

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="energy-watch")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def note_like(self, conn: Connection, topic: str, count: int) -> None:
        """A like frame the gateway accepted (after its own rate limit)."""
        if conn.principal is None or not topic.startswith("session:"):
            return
        key = (conn.principal.user_id, topic.partition(":")[2])
        if key in self.likes or len(self.likes) < LIKES_KEPT:
            self.likes[key] = self.likes.get(key, 0) + count

    def sample(self, slot: int) -> list[list[Any]]:
        """(user, room, device) of every socket subscribed to a room since the last sample."""
        seen: dict[tuple[int, str], int] = {}
        claims: dict[str, list[Any]] = {}
        for conn in self.connections:
            if conn.closed or conn.principal is None:
                continue
            for topic in conn.topics.values():
                if not topic.startswith("session:"):
                    continue
                key = (id(conn), topic)
                first = self.seen.get(key, slot)
                seen[key] = first
                user = conn.principal.user_id
                if first < slot and user not in claims:
                    claims[user] = [user, topic.partition(":")[2], device_key(conn.device)]
        self.seen = seen
        return list(claims.values())

    async def _run(self) -> None:
        minute = self.rules.watch_minute_s
        while True:
            now = time.time()
            await asyncio.sleep(minute - now % minute + 0.01)
            slot = int(time.time() // minute)
            try:
                await self.flush(slot)
            except asyncio.CancelledError:
                raise
            except UNREACHABLE as exc:
                log.warning("energy watch batch lost (%s)", exc)
            except Exception:
                log.exception("energy watch batch failed")

    async def flush(self, slot: int) -> None:
        watch = self.sample(slot)
        likes, self.likes = self.likes, {}
        if watch:
            redis, keys = self.services.redis, self.services.keys
            ttl = max(2, 3 * self.rules.watch_minute_s)
            async with redis.pipeline(transaction=False) as pipe:
                for user, _, _ in watch:
                    pipe.set(keys("energy", "w", user, str(slot)), b"1", nx=True, ex=ttl)
                fresh = await pipe.execute()
            watch = [claim for claim, ok in zip(watch, fresh, strict=True) if ok]
        if not watch and not likes:
            return
        batch = {
            "id": f"{self.owner}:{slot}",
            "slot": slot,
            "watch": watch,
            "likes": [[u, sid, n] for (u, sid), n in likes.items()],
        }
        await self.services.enqueue("award_activity", batch, job_id=f"energy:{batch['id']}")
        self.batches += 1
