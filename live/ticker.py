"""The coalescing ticker of one topic, elected cluster-wide with a Redis lease.

Every process with viewers of a topic runs a `Ticker` for it. Each tick it reports its
local viewer count, and tries to hold the topic's lease. The one holder folds the topic's
inbox into the totals and emits one frame (every event since the last frame, the current
totals) with the topic's next `seq`; the emit is fenced by the lease, so a process that
lost it (paused, partitioned) writes nothing. Frames are therefore identical on every
process, and a burst of a thousand events is one frame, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson

from core.redis import UNREACHABLE, Lua
from core.services import Services
from live import history, limits, rooms
from live.history import TopicKeys

log = logging.getLogger("panen.live")

LEASE_MS = 3000
PRESENCE_TTL_MS = 15_000
STATE_TTL_MS = 30_000
IDLE_TICK_S = 10.0  # keeps a quiet topic's lease and state alive (well inside their TTLs)
COLD = b"cold"  # the state placeholder while a new holder rebuilds from the database

# KEYS: lease, inbox, likes, presence, state.
# ARGV: owner, lease ms, max events, my viewer count, presence ttl ms, state ttl ms, want state.
TICK = Lua(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mine = tonumber(ARGV[4])
if mine > 0 then
  local expires = string.format('%d', now + tonumber(ARGV[5]))
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[4] .. ':' .. expires)
  redis.call('PEXPIRE', KEYS[4], 86400000)
else
  redis.call('HDEL', KEYS[4], ARGV[1])
end
local cur = redis.call('GET', KEYS[1])
local fresh = 0
if not cur then
  if mine <= 0 then return {0} end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  fresh = 1
elseif cur == ARGV[1] then
  if mine <= 0 then redis.call('DEL', KEYS[1]) return {0} end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  return {0}
end
local viewers = 0
local h = redis.call('HGETALL', KEYS[4])
for i = 1, #h, 2 do
  local c, e = string.match(h[i + 1], '^(%d+):(%d+)$')
  if c and tonumber(e) >= now then viewers = viewers + tonumber(c)
  else redis.call('HDEL', KEYS[4], h[i]) end
end
local likes = tonumber(redis.call('GET', KEYS[3]) or '0')
local state = false
if fresh == 1 or ARGV[7] == '1' then
  state = redis.call('GET', KEYS[5])
  if not state then
    redis.call('SET', KEYS[5], 'cold', 'PX', ARGV[6])
    state = 'cold'
  end
else
  redis.call('PEXPIRE', KEYS[5], ARGV[6])
end
local out = {1, viewers, likes, now, state}
for _, e in ipairs(redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1)) do
  out[#out + 1] = e
end
return out
"""
)


class Ticker:
    """Runs while this process has local subscribers of `topic`."""

    def __init__(
        self,
        services: Services,
        owner: str,
        topic: str,
        client_topic: str,
        tk: TopicKeys,
        local_count: Any,
    ) -> None:
        self.services = services
        self.owner = owner
        self.topic = topic
        self.tk = tk
        self.prefix = history.frame_parts("ticker", client_topic)
        self.local_count = local_count  # a callable: this process's viewers of the topic
        self.state: rooms.State | None = None
        self.emitted: tuple[int, int] | None = None  # (viewers, likes) of the last frame
        self.seen: dict[str, None] = {}  # recent order events, to fold each once
        self.period = 1.0 / services.settings.ticker_hz
        self.task: asyncio.Task[None] | None = None
        self.frames = 0
        # A room beats at the ticker rate (viewers and likes change without events); a
        # farmer's or a user's topic ticks only when a producer nudges it.
        self.periodic = rooms.kind_of(topic) == "session"
        self.wake = asyncio.Event()
        self.wake.set()

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.run(), name=f"ticker:{self.topic}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        with contextlib.suppress(*UNREACHABLE):
            await self._call(0)  # leave presence and hand the lease on at once

    async def run(self) -> None:
        backoff = self.period
        while True:
            if not self.periodic:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), IDLE_TICK_S)
                self.wake.clear()
            started = time.monotonic()
            try:
                await self.tick()
                backoff = self.period
            except asyncio.CancelledError:
                raise
            except UNREACHABLE as exc:
                # Redis is away: the hub reconnects; the folded state is reloaded after.
                self.state = None
                log.debug("ticker %s: %s", self.topic, exc)
                backoff = min(backoff * 2, 2.0)
            except Exception:
                self.state = None
                log.exception("ticker %s failed a tick", self.topic)
                backoff = min(backoff * 2, 2.0)
            await asyncio.sleep(max(0.0, backoff - (time.monotonic() - started)))

    async def _call(self, mine: int) -> list[Any]:
        tk = self.tk
        out: list[Any] = await TICK(
            self.services.redis,
            [tk.lease, tk.inbox, tk.likes, tk.presence, tk.state],
            self.owner,
            LEASE_MS,
            limits.EVENTS_PER_FRAME,
            mine,
            PRESENCE_TTL_MS,
            STATE_TTL_MS,
            "1" if self.state is None else "0",
        )
        return out

    async def tick(self) -> None:
        out = await self._call(max(0, int(self.local_count())))
        if int(out[0]) != 1:
            self.state = None  # not the holder: reload whenever this process takes over
            return
        viewers, likes, now_ms = int(out[1]), int(out[2]), int(out[3])
        raw_state, raw_events = out[4], out[5:]
        if isinstance(raw_state, bytes):
            if raw_state == COLD:
                # A room nobody held: the database is the truth as of one snapshot; the
                # events that snapshot already counts are told apart by their transaction.
                self.state = await rooms.cold_state(self.services, self.topic)
                self.emitted = None
            else:
                self.state = orjson.loads(raw_state)
        state = self.state
        assert state is not None
        # What this tick folds is kept only if its frame is: on any failure the state is
        # reloaded from Redis as it was, so the events it marked seen are unmarked too (or
        # the inbox's events, still there, would be skipped for good on the next tick).
        seen_before = dict(self.seen) if raw_events else None  # nothing to mark: no copy
        try:
            await self._fold_and_emit(state, viewers, likes, now_ms, raw_events)
        except BaseException:
            self.state = None
            if seen_before is not None:
                self.seen = seen_before
            raise

    async def _fold_and_emit(
        self, state: rooms.State, viewers: int, likes: int, now_ms: int, raw_events: list[Any]
    ) -> None:
        already = rooms.counted_in(state)
        events: list[dict[str, Any]] = []
        for raw in raw_events:
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                rooms.fold(state, self.topic, event, already=already, seen=self.seen)
                public = rooms.public_event(event)
                if public is not None:
                    events.append(public)
        # A donor message the host hid: gone from the replay, and from this frame's events
        # and later ones of its gift (until the host approves it again).
        for hidden in [e["donation_id"] for e in events if e.get("type") == "message_hidden"]:
            await history.forget_message(self.services.redis, self.tk, str(hidden))
        rooms.strip_hidden(state, events)
        totals = state["totals"]
        events, more = rooms.viewable(events)
        if rooms.kind_of(self.topic) == "session":
            totals["viewers"] = viewers
            totals["likes"] = likes
            rooms.remember(state, events)
        if not raw_events and self.emitted == (viewers, likes):
            return
        rooms.finish(state)
        frame: dict[str, Any] = {"totals": totals, "events": events, "at": now_ms}
        if more:
            frame["more"] = more
        body = orjson.dumps(frame)
        seq = await history.emit(  # if it fails, unknown whether it applied: reload
            self.services.redis,
            self.tk,
            self.prefix,
            b"," + body[1:],
            owner=self.owner,
            trim=len(raw_events),
            state=orjson.dumps(state),
            state_ttl_ms=STATE_TTL_MS,
        )
        if seq < 0:
            self.state = None
            return
        self.emitted = (viewers, likes)
        self.frames += 1
