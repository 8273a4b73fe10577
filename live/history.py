"""The one sequence per topic and its bounded history, kept in Redis.

Every frame that gets a `seq` (ticker frames and chat) is numbered, stored and published by
one Lua script, so the history list always holds consecutive numbers in order and pub/sub
delivers them in that order to every process. A reconnecting client's `since` then names an
index into the history, or is too old (or from before a Redis restart) and gets a snapshot.

A sequence starts at the current Unix time in milliseconds, so that a topic whose keys were
lost (Redis restarted empty) starts above any number a client saw before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from core.events import topic_key
from core.redis import Arg, Client, Keys, Lua
from live import limits

TOPIC_TTL_MS = 24 * 3600 * 1000  # a topic nobody touches for a day is forgotten

# Ensure the sequence exists, starting at Redis's clock in milliseconds.
SEQ_INIT = """
local function seq_init(key)
  if redis.call('EXISTS', key) == 0 then
    local t = redis.call('TIME')
    local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    redis.call('SET', key, string.format('%d', ms))
  end
end
"""

# KEYS: seq, hist, lease, inbox, state. ARGV: owner ('' = unfenced), trim, prefix, suffix,
# state ('' = keep), hist cap, channel, ttl ms, state ttl ms.
EMIT = Lua(
    SEQ_INIT
    + """
if ARGV[1] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
local trim = tonumber(ARGV[2])
if trim > 0 then redis.call('LTRIM', KEYS[4], trim, -1) end
seq_init(KEYS[1])
local seq = redis.call('INCR', KEYS[1])
local frame = ARGV[3] .. string.format('%d', seq) .. ARGV[4]
redis.call('RPUSH', KEYS[2], frame)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[6]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
if ARGV[5] ~= '' then redis.call('SET', KEYS[5], ARGV[5], 'PX', ARGV[9]) end
redis.call('SPUBLISH', ARGV[7], frame)
return seq
"""
)

# KEYS: hist. ARGV: index, frame as read, frame to write, ... Writes them all only if every
# frame is still where it was read (a compare-and-set: one script, so one slot, where a
# WATCH/MULTI transaction is not to be had from a cluster client).
_REPLACE = Lua(
    """
for i = 1, #ARGV, 3 do
  if redis.call('LINDEX', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then return 0 end
end
for i = 1, #ARGV, 3 do redis.call('LSET', KEYS[1], ARGV[i], ARGV[i + 2]) end
return 1
"""
)

# KEYS: seq, hist, state, chat. ARGV: since (-1 = none).
# Returns {seq, 1, frames...} when the frames after `since` are all in the history, else
# {seq, 0, state or false, chat lines...}.
READ = Lua(
    SEQ_INIT
    + """
seq_init(KEYS[1])
local seq = tonumber(redis.call('GET', KEYS[1]))
local since = tonumber(ARGV[1])
if since >= 0 and since <= seq then
  if since == seq then return {seq, 1} end
  local n = redis.call('LLEN', KEYS[2])
  local first = seq - n + 1
  if n > 0 and since >= first - 1 then
    local out = {seq, 1}
    for _, f in ipairs(redis.call('LRANGE', KEYS[2], since - first + 1, -1)) do
      out[#out + 1] = f
    end
    return out
  end
end
local out = {seq, 0, redis.call('GET', KEYS[3])}
for _, line in ipairs(redis.call('LRANGE', KEYS[4], 0, -1)) do out[#out + 1] = line end
return out
"""
)


@dataclass(frozen=True, slots=True)
class TopicKeys:
    seq: str
    hist: str
    lease: str
    inbox: str
    state: str
    chat: str
    likes: str
    presence: str
    muted: str
    channel: str

    @classmethod
    def of(cls, keys: Keys, topic: str) -> TopicKeys:
        def k(part: str) -> str:
            return topic_key(keys, topic, part)

        return cls(
            seq=k("seq"),
            hist=k("hist"),
            lease=k("lease"),
            inbox=k("inbox"),
            state=k("state"),
            chat=k("chat"),
            likes=k("likes"),
            presence=k("presence"),
            muted=k("muted"),
            channel=keys.channel(topic),
        )


def frame_parts(kind: str, client_topic: str) -> bytes:
    """The start of a numbered frame, up to where its `seq` goes."""
    return b'{"type":"' + kind.encode() + b'","topic":"' + client_topic.encode() + b'","seq":'


async def emit(
    redis: Client,
    tk: TopicKeys,
    prefix: bytes,
    suffix: bytes,
    *,
    owner: str = "",
    trim: int = 0,
    state: bytes = b"",
    state_ttl_ms: int = 30_000,
) -> int:
    """Number, store and publish one frame `prefix + seq + suffix`; -1 if `owner` no longer
    holds the topic's ticker lease (another process took over: nothing was written)."""
    seq = await EMIT(
        redis,
        [tk.seq, tk.hist, tk.lease, tk.inbox, tk.state],
        owner,
        trim,
        prefix,
        suffix,
        state,
        limits.HISTORY_FRAMES,
        tk.channel,
        TOPIC_TTL_MS,
        state_ttl_ms,
    )
    return int(seq)


@dataclass(frozen=True, slots=True)
class Recovery:
    seq: int
    frames: list[bytes]


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    state: bytes | None
    chat: list[bytes]


async def read(redis: Client, tk: TopicKeys, since: int | None) -> Recovery | Snapshot:
    """The frames after `since` if the history still holds them all, else the topic's
    state (as of the returned `seq`) for a snapshot."""
    out = await READ(redis, [tk.seq, tk.hist, tk.state, tk.chat], -1 if since is None else since)
    seq = int(out[0])
    if int(out[1]) == 1:
        return Recovery(seq, list(out[2:]))
    state = out[2] if isinstance(out[2], bytes) else None
    return Snapshot(seq, state, list(out[3:]))


def seq_of(frame: bytes) -> int:
    """The `seq` of a numbered frame, read without parsing the whole frame."""
    start = frame.index(b'"seq":') + 6
    end = start
    while frame[end : end + 1].isdigit():
        end += 1
    return int(frame[start:end])


async def forget_message(redis: Client, tk: TopicKeys, donation_id: str) -> int:
    """Take a hidden donor message out of every frame of the topic's history, so that no
    client replays it with `since`; the frames keep their numbers. Returns frames changed."""
    needle = donation_id.encode()
    for _ in range(5):  # the ticker appends (and trims) meanwhile: try again on a conflict
        frames: list[bytes] = await redis.lrange(tk.hist, 0, -1)  # type: ignore[misc]
        args: list[Arg] = []
        for i, raw in enumerate(frames):
            if needle not in raw:
                continue
            frame = orjson.loads(raw)
            if strip_message(frame.get("events"), donation_id):
                args += [i, raw, orjson.dumps(frame)]
        if not args:
            return 0
        if int(await _REPLACE(redis, [tk.hist], *args)) == 1:
            return len(args) // 3
    return 0


def strip_message(events: Any, donation_id: str) -> bool:
    """Remove the message of `donation_id`'s events in place; whether any had one."""
    changed = False
    for event in events if isinstance(events, list) else []:
        is_it = isinstance(event, dict) and event.get("donation_id") == donation_id
        if is_it and event.pop("message", None) is not None:
            changed = True
    return changed
