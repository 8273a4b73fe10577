"""Chat lines and their moderation. A line is numbered on the room's one sequence, kept in
the room's history (for `since`) and in the short list a joining viewer sees."""

from __future__ import annotations

import asyncio
import weakref

import orjson

from commerce.sessions import service as sessions
from commerce.sessions.schemas import MAX_SLOW_MODE_S
from core.clock import rfc3339, utcnow
from core.events import topic_key
from core.ids import new_id
from core.redis import Arg, Client, Lua
from core.services import Services
from live import limits
from live.history import SEQ_INIT, TOPIC_TTL_MS, TopicKeys, frame_parts

MUTED = -1
RATE_LIMITED = -2
NO_RULES = -3  # the room's rules are not cached: load them and say the line again
BANNED = -4
BLOCKED_WORD = -5
SLOW_MODE = -6
RULES_LOADS = 5  # the host changing the rules again and again between a load and the line


class RulesChanging(Exception):
    """The room's rules kept changing while a line was said: it was not posted."""


# KEYS: seq, hist, chat, muted, rate, rules, slow. ARGV: user, prefix, suffix, line,
# history cap, recent lines kept, channel, ttl ms, lines per window, window ms, the line's
# words (`chat_words`), exempt ("1": the host or an admin, whom the rules do not hold),
# how long a last line's time is kept (the longest slow mode).
# Returns {seq} or {code, ms to wait}. Slow mode keeps the time of the user's last line and
# compares it with the rule as it is now, so a host who shortens it shortens every wait; a
# line refused by slow mode is not counted against the rate limit.
_SAY = Lua(
    SEQ_INIT
    + """
if redis.call('HGET', KEYS[6], 'loaded') ~= '1' then return {-3, 0} end
local now = 0
if ARGV[12] ~= '1' then
  if redis.call('HEXISTS', KEYS[6], 'ban:' .. ARGV[1]) == 1 then return {-4, 0} end
  if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then return {-1, 0} end
  local words = redis.call('HGET', KEYS[6], 'words') or ''
  local said = ' ' .. ARGV[11] .. ' '
  for word in string.gmatch(words, '[^\\n]+') do
    if string.find(said, ' ' .. word .. ' ', 1, true) then return {-5, 0} end
  end
  local slow = tonumber(redis.call('HGET', KEYS[6], 'slow_ms') or '0')
  if slow > 0 then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local last = tonumber(redis.call('GET', KEYS[7]) or '0')
    if now - last < slow then return {-6, slow - (now - last)} end
  end
end
local n = redis.call('INCR', KEYS[5])
if n == 1 then redis.call('PEXPIRE', KEYS[5], ARGV[10]) end
if n > tonumber(ARGV[9]) then return {-2, redis.call('PTTL', KEYS[5])} end
if now > 0 then redis.call('SET', KEYS[7], now, 'PX', ARGV[13]) end
seq_init(KEYS[1])
local seq = redis.call('INCR', KEYS[1])
local frame = ARGV[2] .. string.format('%d', seq) .. ARGV[3]
redis.call('RPUSH', KEYS[2], frame)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[5]), -1)
redis.call('RPUSH', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[6]), -1)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[8]) end
redis.call('SPUBLISH', ARGV[7], frame)
return {seq, 0}
"""
)

# KEYS: rules, generation. ARGV: the generation the load began at ("" for none), ttl ms,
# field, value, ... Caches what was read only if no change came since it began.
_CACHE_RULES = Lua(
    """
local now = redis.call('GET', KEYS[2]) or ''
if now ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
)

# KEYS: seq, hist, chat. ARGV: needle, prefix, suffix, history cap, channel, ttl ms.
_DELETE = Lua(
    SEQ_INIT
    + """
local found = false
for _, line in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  if string.find(line, ARGV[1], 1, true) then
    redis.call('LREM', KEYS[3], 1, line)
    found = true
    break
  end
end
if not found then return -1 end
seq_init(KEYS[1])
local seq = redis.call('INCR', KEYS[1])
local frame = ARGV[2] .. string.format('%d', seq) .. ARGV[3]
redis.call('RPUSH', KEYS[2], frame)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('SPUBLISH', ARGV[5], frame)
return seq
"""
)


# One load of a room's rules at a time in this process (a weak map: a lock lives as long as
# some line waits on it).
_LOADING: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


async def _load_rules(services: Services, session_id: str, rules: str) -> None:
    """Cache the room's rules as the database has them, unless a change came meanwhile."""
    redis = services.redis
    generation = sessions.rules_generation_key(services.keys, session_id)
    seen = await redis.get(generation)
    fields = await sessions.rules_fields(services.db, session_id)
    if fields is None:
        fields = {"loaded": "1"}  # a room without a session row: no rules to hold
    flat = [part for pair in fields.items() for part in pair]
    await _CACHE_RULES(
        redis, [rules, generation], seen if seen is not None else b"", sessions.RULES_TTL_MS, *flat
    )


async def say(
    services: Services,
    tk: TopicKeys,
    topic: str,
    client_topic: str,
    user_id: str,
    display_name: str,
    text: str,
    *,
    exempt: bool,
) -> tuple[int, int]:
    """Post a line: (its seq, 0), or (MUTED | RATE_LIMITED | BANNED | BLOCKED_WORD |
    SLOW_MODE, ms until the user may say another). `exempt`: the room's host or an admin,
    whom mutes, bans, blocked words and slow mode do not hold."""
    redis = services.redis
    session_id = topic.partition(":")[2]
    line = orjson.dumps(
        {
            "id": new_id("msg"),
            "user_id": user_id,
            "display_name": display_name,
            "text": text,
            "at": rfc3339(utcnow()),
        }
    )
    rules = sessions.rules_key(services.keys, session_id)
    keys = [
        tk.seq,
        tk.hist,
        tk.chat,
        tk.muted,
        topic_key(services.keys, topic, "chatrate:" + user_id),
        rules,
        topic_key(services.keys, topic, "slow:" + user_id),
    ]
    args: list[Arg] = [
        user_id,
        frame_parts("chat", client_topic),
        b',"message":' + line + b"}",
        line,
        limits.HISTORY_FRAMES,
        limits.CHAT_RECENT,
        tk.channel,
        TOPIC_TTL_MS,
        limits.CHAT_LINES_PER_WINDOW,
        limits.CHAT_WINDOW_S * 1000,
        sessions.chat_words(text),
        "1" if exempt else "0",
        MAX_SLOW_MODE_S * 1000,
    ]
    for _ in range(RULES_LOADS):
        code, wait = await _SAY(redis, keys, *args)
        if code != NO_RULES:
            return int(code), int(wait)
        # Not cached (or a change just dropped them): load the rules and say it again. The
        # lines of one room that miss together wait for one load, not one load each.
        lock = _LOADING.setdefault(session_id, asyncio.Lock())
        async with lock:
            if await redis.hget(rules, "loaded") is None:  # type: ignore[misc]  # redis-py types sync and async as one
                await _load_rules(services, session_id, rules)
    raise RulesChanging


async def delete(redis: Client, tk: TopicKeys, client_topic: str, message_id: str) -> int:
    """Take a line out of the room; -1 if no recent line has that id."""
    seq = await _DELETE(
        redis,
        [tk.seq, tk.hist, tk.chat],
        orjson.dumps({"id": message_id})[1:-1],  # '"id":"msg_…"', as the line holds it
        frame_parts("chat_deleted", client_topic),
        b',"message_id":' + orjson.dumps(message_id) + b"}",
        limits.HISTORY_FRAMES,
        tk.channel,
        TOPIC_TTL_MS,
    )
    return int(seq)


async def mute(redis: Client, tk: TopicKeys, user_id: str) -> None:
    """The user may not chat in this room for the rest of the session (or until unmuted)."""
    async with redis.pipeline(transaction=False) as pipe:  # one key: one slot
        pipe.sadd(tk.muted, user_id)
        pipe.pexpire(tk.muted, TOPIC_TTL_MS)
        await pipe.execute()


async def unmute(redis: Client, tk: TopicKeys, user_id: str) -> None:
    """The host changed their mind: the user may chat again."""
    await redis.srem(tk.muted, user_id)  # type: ignore[misc]  # redis-py types sync and async as one
