"""Stock counters in Redis: reserve, release and rebuild, one Lua script each.

Per inventory (a listing, or a flash deal's own allotment) a session's hash-tagged keys
hold: `inv:{id}` (hash: `stock` left, `gen` the counter's generation), `bought:{id}`
(buyer -> units held), `holds:{id}` (order -> "buyer|qty|expires_ms"), and the session's
`idem` hash ("buyer|key" -> "order|gen|fingerprint") with, beside it, `idem_at` ("buyer|key"
-> "order|counter": the counter that generation is of). Nothing reads a hold's
`expires_ms` any more (`stock.tasks.reconcile_holds` ages a hold by its order's id); it
stays because older processes' RELEASE parses that format during a rolling deploy.

A hold lives as long as its order can still become or stay a sale (reserved, paid,
settled); releasing it is idempotent because the script only gives back a hold it finds.

When the counter is missing (never built, evicted, Redis wiped) it is rebuilt from the
orders in PostgreSQL under a new generation. Orders are only written under the generation
their reservation was made in (see `order_writer.INSERT_ORDERS`), so a reservation taken from a
counter that was since lost can never land in the database uncounted: no oversell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import text

from commerce.orders.lifecycle import HOLDS_STOCK
from commerce.stock.events import SoldOut, Stock
from core.batching import Batcher
from core.errors import ApiError
from core.events import publish, publish_many
from core.ids import made_ms
from core.pubsub import Waiter, Wakeups
from core.redis import UNREACHABLE, Arg, Lua, alone_if_unreachable, run_scripts
from core.services import Services

log = logging.getLogger("panen.stock")

# One call reserves a batch of requests for one counter (its id, ARGV[1]), in order, each
# exactly as if it came alone: seven ARGV values per request, one reply per request. A
# reservation also notes which counter it was made in (KEYS[6]), beside its idempotency
# record, whose format older processes read.
RESERVE = Lua(
    """
local gen = redis.call('HGET', KEYS[1], 'gen')
local stock = tonumber(redis.call('HGET', KEYS[1], 'stock') or '0')
local out = {}
if redis.call('GET', KEYS[5]) == 'ended' then
  for i = 2, #ARGV, 7 do out[#out + 1] = {'ended'} end
  return out
end
for i = 2, #ARGV, 7 do
  local buyer, idem, fp = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local qty, limit = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local prior = redis.call('HGET', KEYS[4], idem)
  local had = tonumber(redis.call('HGET', KEYS[2], buyer) or '0')
  if prior then
    out[#out + 1] = {'dup', prior}
  elseif not gen then
    out[#out + 1] = {'missing'}
  elseif stock < qty then
    out[#out + 1] = {'sold_out', stock, had}
  elseif limit > 0 and had + qty > limit then
    out[#out + 1] = {'limit', had}
  else
    stock = redis.call('HINCRBY', KEYS[1], 'stock', -qty)
    redis.call('HINCRBY', KEYS[2], buyer, qty)
    redis.call('HSET', KEYS[3], ARGV[i + 5], buyer .. '|' .. qty .. '|' .. ARGV[i + 6])
    redis.call('HSET', KEYS[4], idem, ARGV[i + 5] .. '|' .. gen .. '|' .. fp)
    redis.call('HSET', KEYS[6], idem, ARGV[i + 5] .. '|' .. ARGV[1])
    out[#out + 1] = {'ok', stock, gen}
  end
end
return out
"""
)

# ARGV[2], when not empty, is the idempotency record to forget with the hold (its order
# gave up), if it still names this order (ARGV[1]): the duplicates waiting for its answer
# are woken (ARGV[3], the channel; ARGV[4], the answer's key) to try afresh.
RELEASE = Lua(
    """
if ARGV[2] ~= '' then
  local record = redis.call('HGET', KEYS[4], ARGV[2])
  if record and string.sub(record, 1, #ARGV[1] + 1) == ARGV[1] .. '|' then
    redis.call('HDEL', KEYS[4], ARGV[2])
    redis.call('SPUBLISH', ARGV[3], ARGV[4])
  end
end
local hold = redis.call('HGET', KEYS[3], ARGV[1])
if not hold then return -1 end
redis.call('HDEL', KEYS[3], ARGV[1])
local buyer, qty = string.match(hold, '^(.*)|(%d+)|%d+$')
qty = tonumber(qty)
if redis.call('HINCRBY', KEYS[2], buyer, -qty) <= 0 then redis.call('HDEL', KEYS[2], buyer) end
if redis.call('HEXISTS', KEYS[1], 'stock') == 1 then
  return redis.call('HINCRBY', KEYS[1], 'stock', qty)
end
return -1
"""
)

# Replaces a counter with one of generation ARGV[1], stock ARGV[2] and the holds of the
# orders in ARGV[3..] (order, buyer, units), unless it is of that generation or newer.
# Returns the orders whose holds it dropped (their requests died, or will be refused).
REBUILD = Lua(
    """
local cur = redis.call('HGET', KEYS[1], 'gen')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return {} end
local kept, dropped = {}, {}
for i = 3, #ARGV, 3 do kept[ARGV[i]] = true end
for _, order in ipairs(redis.call('HKEYS', KEYS[3])) do
  if not kept[order] then dropped[#dropped + 1] = order end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'stock', ARGV[2], 'gen', ARGV[1])
for i = 3, #ARGV, 3 do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1] .. '|' .. ARGV[i + 2] .. '|0')
  redis.call('HINCRBY', KEYS[2], ARGV[i + 1], tonumber(ARGV[i + 2]))
end
return dropped
"""
)


@dataclass(frozen=True, slots=True)
class Reservation:
    outcome: str  # ok | dup | sold_out | limit | missing | ended
    remaining: int = 0
    generation: int = 0
    already: int = 0  # units the buyer already holds (limit, sold out)
    prior_order_id: str = ""
    prior_generation: int = 0
    prior_fingerprint: str = ""


def status_key(services: Services, session_id: str) -> str:
    """`ended` once the session has ended: every reservation checks it in the same script,
    so a session ended through one process takes no order on any other after that."""
    return services.keys.session(session_id, "status")


# Once a session has ended no order is reserved in it (a resend answers 409
# `session_not_live` before it gets that far), so its idempotency records, one per order
# and each with its note of where it reserved, only take memory: they go a day later. Its
# counters stay: a room rebuilt after the show reads what was left from them.
KEYS_AFTER_END_S = 24 * 3600


async def session_ended(services: Services, session_id: str) -> None:
    pipe = services.redis.pipeline(transaction=False)
    pipe.set(status_key(services, session_id), b"ended", ex=30 * 24 * 3600)
    pipe.expire(services.keys.session(session_id, "idem"), KEYS_AFTER_END_S)
    pipe.expire(_made_in_key(services, session_id), KEYS_AFTER_END_S)
    await pipe.execute()


def _keys(services: Services, session_id: str, inventory_id: str) -> list[str]:
    k = services.keys.session
    return [
        k(session_id, "inv", inventory_id),
        k(session_id, "bought", inventory_id),
        k(session_id, "holds", inventory_id),
        k(session_id, "idem"),
    ]


async def run(services: Services, script: Lua, keys: list[str], *args: str | int) -> Any:
    return await script(services.redis, keys, *args)


def idem_field(buyer_id: str, key: str) -> str:
    return f"{buyer_id}|{key}"


def _made_in_key(services: Services, session_id: str) -> str:
    """The hash of which counter each key's order reserved in ("buyer|key" -> "order|id")."""
    return services.keys.session(session_id, "idem_at")


async def reserved_in(
    services: Services, session_id: str, buyer_id: str, key: str, order_id: str
) -> str | None:
    """The counter `order_id`, the order a key's record names, reserved in; None if that
    is not known (reserved by an older process)."""
    raw = await cast(
        Awaitable[bytes | None],
        services.redis.hget(_made_in_key(services, session_id), idem_field(buyer_id, key)),
    )
    if raw is None:
        return None
    named, _, inventory_id = raw.decode().partition("|")
    return inventory_id if named == order_id else None


def _s(v: bytes | str | int) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass(frozen=True, slots=True)
class _Ask:
    session_id: str
    inventory_id: str
    args: tuple[str | int, ...]


def _reservation(raw: list[Any]) -> Reservation:
    outcome = _s(raw[0])
    if outcome == "ok":
        return Reservation("ok", remaining=int(raw[1]), generation=int(raw[2]))
    if outcome == "dup":
        prior_id, gen, fp = _s(raw[1]).split("|", 2)
        return Reservation(
            "dup", prior_order_id=prior_id, prior_generation=int(gen), prior_fingerprint=fp
        )
    if outcome == "sold_out":
        return Reservation("sold_out", remaining=int(raw[1]), already=int(raw[2]))
    if outcome == "limit":
        return Reservation("limit", already=int(raw[1]))
    if outcome == "ended":
        return Reservation("ended")
    return Reservation("missing")


async def _reserve_batch(services: Services, asks: list[_Ask]) -> list[Reservation]:
    """One script call per counter in the batch (its keys share the session's hash slot),
    all in one round trip."""
    by_counter: dict[tuple[str, str], list[int]] = {}
    for n, ask in enumerate(asks):
        by_counter.setdefault((ask.session_id, ask.inventory_id), []).append(n)
    calls: list[tuple[Lua, Sequence[str], Sequence[Arg]]] = [
        (
            RESERVE,
            [*_keys(services, sid, inv), status_key(services, sid), _made_in_key(services, sid)],
            [inv, *(a for n in members for a in asks[n].args)],
        )
        for (sid, inv), members in by_counter.items()
    ]
    out: list[Reservation | None] = [None] * len(asks)
    for members, raw in zip(
        by_counter.values(),
        await run_scripts(services.redis, calls, replicated=True),
        strict=True,
    ):
        for n, reply in zip(members, raw, strict=True):
            out[n] = _reservation(reply)
    return [r for r in out if r is not None]


RESERVE_BATCH = 500


async def reserve(
    services: Services,
    *,
    session_id: str,
    inventory_id: str,
    buyer_id: str,
    idempotency_key: str,
    fingerprint: str,
    quantity: int,
    limit: int | None,
    order_id: str,
    expires_ms: int,
) -> Reservation:
    """Check and take stock for one order. Concurrent calls of this process go to Redis
    together: one script call reserves a whole batch, in arrival order."""
    batcher: Batcher[_Ask, Reservation] = services.shared(
        "commerce.inventory.reserve",
        lambda: Batcher(
            lambda asks: _reserve_batch(services, asks), max_batch=RESERVE_BATCH, max_in_flight=2
        ),
    )
    args = (
        buyer_id,
        idem_field(buyer_id, idempotency_key),
        fingerprint,
        quantity,
        limit or 0,
        order_id,
        expires_ms,
    )
    return await batcher.submit(_Ask(session_id, inventory_id, args))


async def release(
    services: Services,
    *,
    session_id: str,
    inventory_id: str,
    order_id: str,
    forget_idempotency: str = "",
) -> int:
    """Give an order's hold back to the counter; -1 when there was no hold (already given
    back, or the counter was rebuilt without it). Returns the stock left otherwise."""
    keys = _keys(services, session_id, inventory_id)
    if not forget_idempotency:
        return int(await run(services, RELEASE, keys, order_id, "", "", ""))
    channel = answers_channel(services, session_id)
    answer = _answer_key(services, session_id, forget_idempotency)
    return int(await run(services, RELEASE, keys, order_id, forget_idempotency, channel, answer))


def _answer_key(services: Services, session_id: str, idem: str) -> str:
    """Where the first answer to an idempotency record (`idem_field`) is kept."""
    return services.keys.session(session_id, "resp", idem)


def _response_key(services: Services, session_id: str, buyer_id: str, key: str) -> str:
    return _answer_key(services, session_id, idem_field(buyer_id, key))


def answers_channel(services: Services, session_id: str) -> str:
    """Where the keeping of a session's first answers is announced (in the session's slot):
    a duplicate send waiting on another process wakes when its answer is kept."""
    return services.keys.session(session_id, "ch", "answers")


# Keeps a batch of one session's first answers (KEYS, with ARGV[3..] their bodies, for
# ARGV[1] seconds), then names them on the session's answers channel (ARGV[2]): newline
# separated, as `core.pubsub.Wakeups` reads them.
REMEMBER = Lua(
    """
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 2], 'EX', ARGV[1]) end
redis.call('SPUBLISH', ARGV[2], table.concat(KEYS, '\\n'))
return #KEYS
"""
)


async def _remember(services: Services, answers: list[tuple[str, str, bytes]]) -> list[None]:
    """One script call per session in the batch, all in one round trip."""
    by_session: dict[str, list[tuple[str, bytes]]] = {}
    for session_id, key, body in answers:
        by_session.setdefault(session_id, []).append((key, body))
    ttl = services.settings.reservation_ttl_s
    await run_scripts(
        services.redis,
        [
            (
                REMEMBER,
                [key for key, _ in kept],
                [ttl, answers_channel(services, session_id), *(body for _, body in kept)],
            )
            for session_id, kept in by_session.items()
        ],
    )
    return [None] * len(answers)


async def remember_answer(
    services: Services, session_id: str, buyer_id: str, key: str, body: bytes
) -> None:
    """Keep the first answer to an idempotency key for its duplicate sends, wherever they
    land, and wake those waiting for it; concurrent answers of this process are written in
    one round trip."""
    batcher: Batcher[tuple[str, str, bytes], Exception | None] = services.shared(
        "commerce.inventory.answers",
        lambda: Batcher(
            lambda answers: alone_if_unreachable(lambda a: _remember(services, a), answers),
            max_batch=500,
            max_in_flight=2,
        ),
    )
    await batcher.submit((session_id, _response_key(services, session_id, buyer_id, key), body))


def waiting_for_answer(services: Services, session_id: str, buyer_id: str, key: str) -> Waiter:
    """A duplicate send's wake-up for when its first answer is kept, by whichever process.
    Register it before looking for the answer: a keeping after that look wakes it."""
    wakeups = services.shared("commerce.inventory.wakeups", lambda: Wakeups(services.redis))
    return wakeups.wait(
        answers_channel(services, session_id).encode(),
        _response_key(services, session_id, buyer_id, key).encode(),
    )


@dataclass(frozen=True, slots=True)
class Answered:
    body: bytes | None  # the first answer to the key, if it was kept yet
    kept_ms: int  # when it was kept (epoch ms; 0 if unknown)
    names: str | None  # the order the key's idempotency record names, if any


async def answered(services: Services, session_id: str, buyer_id: str, key: str) -> Answered:
    """The stored first answer to this key, and the order its idempotency record names.
    Every duplicate send of a stampede polls here while its first is being placed: the
    concurrent polls of this process go to Redis together, in one round trip."""
    batcher: Batcher[tuple[str, str, str], Answered | Exception] = services.shared(
        "commerce.inventory.answered",
        lambda: Batcher(
            lambda asks: alone_if_unreachable(lambda a: _answered(services, a), asks),
            max_batch=500,
            max_in_flight=2,
        ),
    )
    found = await batcher.submit((session_id, buyer_id, key))
    assert not isinstance(found, Exception)  # the batcher raised it for us
    return found


async def _answered(services: Services, asks: list[tuple[str, str, str]]) -> list[Answered]:
    """When an answer was kept is read from its time to live (it is kept for
    `reservation_ttl_s`), on this process's clock: the answer's format stays what every
    process reads."""
    pipe = services.redis.pipeline(transaction=False)
    for session_id, buyer_id, key in asks:
        answer = _response_key(services, session_id, buyer_id, key)
        pipe.get(answer)
        pipe.pttl(answer)
        pipe.hget(services.keys.session(session_id, "idem"), idem_field(buyer_id, key))
    raw = await pipe.execute()
    now_ms = int(time.time() * 1000)
    kept_for_ms = services.settings.reservation_ttl_s * 1000
    out = []
    for n in range(len(asks)):
        body, ttl_ms, idem = raw[3 * n : 3 * n + 3]
        names = None if idem is None else idem.decode().split("|", 1)[0]
        if body is None:
            out.append(Answered(None, 0, names))
        else:
            kept_ms = now_ms - (kept_for_ms - int(ttl_ms)) if ttl_ms > 0 else 0
            out.append(Answered(body, kept_ms, names))
    return out


async def generation(services: Services, session_id: str, inventory_id: str) -> int | None:
    """The generation of the counter Redis holds (None: no counter)."""
    key = services.keys.session(session_id, "inv", inventory_id)
    raw = await cast(Awaitable[bytes | None], services.redis.hget(key, "gen"))
    return None if raw is None else int(raw)


async def remaining(services: Services, session_id: str, inventory_id: str) -> int | None:
    key = services.keys.session(session_id, "inv", inventory_id)
    raw = await cast(Awaitable[bytes | None], services.redis.hget(key, "stock"))
    return None if raw is None else int(raw)


# Rebuilding a counter is one process's job at a time (the generation makes a second one
# harmless, not useful). Its lock is a lease the rebuilder renews while it works, so that
# one killed mid-rebuild holds the listing up for seconds, not for a long fixed lock; the
# others wait for the counter and take the lock over once it lapses. A rebuild that takes
# longer than REBUILD_WAIT_S (a lock it waits on) gives up, so that another may try.
REBUILD_LEASE_MS = 3_000
REBUILD_WAIT_S = 15.0

# The lease is renewed, and let go, only by the rebuilder that holds it (its token).
_RENEW = Lua(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
)
_LET_GO = Lua(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
)

# A counter of a generation the database has moved past can never land an order again;
# it is dropped (only if it is still that generation) so that the next order rebuilds it.
_DROP_STALE = Lua(
    """
if redis.call('HGET', KEYS[1], 'gen') == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  return 1
end
return 0
"""
)


async def drop_if_stale(
    services: Services, *, session_id: str, inventory_id: str, generation: int
) -> bool:
    """An order of `generation` was refused by the database (a rebuild moved past it): drop
    the counter if it is still of that generation. Two rebuilds that overlapped (a lease
    lapsed under a live rebuilder) can leave the older one's counter behind, and nothing
    else would ever notice."""
    keys = _keys(services, session_id, inventory_id)[:3]
    return bool(await run(services, _DROP_STALE, keys, generation))


_rebuilding: dict[tuple[int, str], asyncio.Task[list[str]]] = {}


async def rebuild(services: Services, *, session_id: str, inventory_id: str, stock: int) -> None:
    """Rebuild a missing counter; the requests of one process that find it missing at the
    same moment share one rebuild (other processes wait on the Redis lock)."""
    key = (id(services), inventory_id)
    task = _rebuilding.get(key)
    if task is None:
        task = asyncio.create_task(
            _rebuild(services, session_id=session_id, inventory_id=inventory_id, stock=stock)
        )
        _rebuilding[key] = task

        def done(t: asyncio.Task[list[str]]) -> None:
            _rebuilding.pop(key, None)
            # Every request sharing it may have gone (cancelled): the outcome is read here
            # so that a failure is not reported as never retrieved.
            if not t.cancelled() and t.exception() is not None:
                log.warning("rebuilding %s failed: %r", inventory_id, t.exception())

        task.add_done_callback(done)
    try:
        await asyncio.shield(task)
    except TimeoutError:
        raise ApiError(503, "busy", "stock is being recounted; retry in a moment") from None


async def recount(
    services: Services, *, session_id: str, inventory_id: str, stock: int
) -> list[str]:
    """Rebuild a counter that is there, from the database, under a new generation: its
    holds become exactly the orders that hold stock. A hold whose order never landed goes,
    and that order can no longer land (its generation is past), however late its request
    resumes. Returns the orders whose holds went. Raises TimeoutError if the rebuild lock
    or the database did not allow it in REBUILD_WAIT_S."""
    return await _rebuild(
        services, session_id=session_id, inventory_id=inventory_id, stock=stock, force=True
    )


async def _rebuild(
    services: Services, *, session_id: str, inventory_id: str, stock: int, force: bool = False
) -> list[str]:
    """Rebuild one counter from the orders in PostgreSQL, under a new generation; unless
    `force`, only if it is missing (another process may have rebuilt it meanwhile).

    Taking the generation row FOR UPDATE waits for every order insert still in flight
    (each holds a key-share lock on that row) and makes any later insert of an older
    generation fail, so the count below cannot miss an order that will still land.
    """
    lock = services.keys.session(session_id, "rebuild", inventory_id)
    inv = services.keys.session(session_id, "inv", inventory_id)
    token = secrets.token_hex(8)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + REBUILD_WAIT_S
    while not await services.redis.set(lock, token, nx=True, px=REBUILD_LEASE_MS):
        # Someone else is rebuilding: wait for their counter instead of racing them (a
        # forced recount waits for the lock: theirs may have begun before it was asked).
        if not force and await cast(Awaitable[bool], services.redis.hexists(inv, "gen")):
            return []
        if loop.time() >= give_up:
            if force:
                raise TimeoutError(f"the rebuild lock of {inventory_id} stayed taken")
            return []
        await asyncio.sleep(0.025)
    renewing = asyncio.create_task(_renew(services, lock, token))
    try:
        if not force and await cast(Awaitable[bool], services.redis.hexists(inv, "gen")):
            return []  # rebuilt by someone else between our miss and our lock
        async with asyncio.timeout(REBUILD_WAIT_S):
            return await _recount(services, session_id, inventory_id, stock)
    finally:
        renewing.cancel()
        with contextlib.suppress(*UNREACHABLE):  # a lease: it lapses by itself anyway
            await run(services, _LET_GO, [lock], token)


async def _recount(services: Services, session_id: str, inventory_id: str, stock: int) -> list[str]:
    async with services.db.transaction() as s:
        await s.execute(
            text(
                "INSERT INTO inventory_generations (inventory_id, generation)"
                " VALUES (:i, 0) ON CONFLICT DO NOTHING"
            ),
            {"i": inventory_id},
        )
        gen = (
            await s.execute(
                text(
                    "SELECT generation FROM inventory_generations"
                    " WHERE inventory_id = :i FOR UPDATE"
                ),
                {"i": inventory_id},
            )
        ).scalar_one()
        rows = (
            await s.execute(
                text(
                    "SELECT id, buyer_id, quantity FROM orders"
                    " WHERE inventory_id = :i AND status = ANY(:holding)"
                ),
                {"i": inventory_id, "holding": [str(h) for h in HOLDS_STOCK]},
            )
        ).all()
        await s.execute(
            text("UPDATE inventory_generations SET generation = :g WHERE inventory_id = :i"),
            {"g": gen + 1, "i": inventory_id},
        )
    left = stock - sum(int(r.quantity) for r in rows)
    args: list[str | int] = [gen + 1, max(left, 0)]
    for r in rows:
        args += [r.id, r.buyer_id, int(r.quantity)]
    raw = await run(services, REBUILD, _keys(services, session_id, inventory_id)[:3], *args)
    return [_s(order_id) for order_id in raw]


async def _renew(services: Services, lock: str, token: str) -> None:
    """Keep a rebuild's lease while it runs; stop once it is someone else's."""
    while True:
        await asyncio.sleep(REBUILD_LEASE_MS / 3000)
        with contextlib.suppress(*UNREACHABLE):  # a missed renewal only lets another start
            if not await run(services, _RENEW, [lock], token, REBUILD_LEASE_MS):
                return


# --- Telling rooms what is left --------------------------------------------------------

ANNOUNCE_EVERY_S = 0.1

# Per process: the latest stock left per (session, listing, deal) not yet announced.
_left: dict[tuple[str, str, str | None], int] = {}
_flushing: dict[int, asyncio.Task[None]] = {}


async def _flush(services: Services) -> None:
    """Announce the stock left at most every ANNOUNCE_EVERY_S per process: a room's ticker
    coalesces anyway, and a stampede would otherwise publish once per order."""
    try:
        await asyncio.sleep(ANNOUNCE_EVERY_S)
        pending = dict(_left)
        _left.clear()
        await publish_many(
            services,
            [
                (f"session:{sid}", Stock(listing_id=lid, remaining=left, deal_id=deal_id))
                for (sid, lid, deal_id), left in pending.items()
            ],
        )
    except UNREACHABLE as exc:
        # Redis is away: a room rebuilt after it comes back reads the stock afresh.
        log.warning("stock announcement lost (%s)", exc)
    except Exception:  # a task nobody awaits: say what happened here
        log.exception("stock announcement failed")
    finally:
        _flushing.pop(id(services), None)


async def announce_left(
    services: Services, session_id: str, listing_id: str, deal_id: str | None, left: int
) -> None:
    """Tell the room how many units of a listing (or its deal) are left; at once when
    none are, coalesced otherwise."""
    slot = (session_id, listing_id, deal_id)
    _left[slot] = min(left, _left.get(slot, left))
    if id(services) not in _flushing:
        _flushing[id(services)] = asyncio.create_task(_flush(services))
    if left == 0:
        await publish(
            services, f"session:{session_id}", SoldOut(listing_id=listing_id, deal_id=deal_id)
        )


async def holds_made_before(
    services: Services, session_id: str, inventory_id: str, before_ms: int
) -> list[str]:
    """Orders holding units of a counter whose ids were made before `before_ms`: their
    requests reserved then (an order's id is made just before its reservation)."""
    raw = await cast(
        Awaitable[list[bytes]],
        services.redis.hkeys(services.keys.session(session_id, "holds", inventory_id)),
    )
    out = []
    for field in raw:
        order_id = field.decode()
        made = made_ms(order_id)
        if made is not None and made < before_ms:
            out.append(order_id)
    return out


# Forgets idempotency records (ARGV: field, order pairs) that still name those orders: one
# rewritten since it was read (a retry that reserved again) is left alone.
_FORGET = Lua(
    """
local n = 0
for i = 1, #ARGV, 2 do
  local record = redis.call('HGET', KEYS[1], ARGV[i])
  if record and string.sub(record, 1, #ARGV[i + 1] + 1) == ARGV[i + 1] .. '|' then
    n = n + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return n
"""
)


async def forget_keys_of(services: Services, session_id: str, order_ids: set[str]) -> int:
    """Drop the idempotency records that name these orders (given-back holds whose orders
    never landed), so that a retry with the same key may try afresh. Scans the session's
    records: only for the rare stranded hold."""
    if not order_ids:
        return 0
    key = services.keys.session(session_id, "idem")
    stale: list[str] = []
    async for field, value in services.redis.hscan_iter(key, count=1000):
        order_id = value.split(b"|", 1)[0].decode()
        if order_id in order_ids:
            stale += [field.decode(), order_id]
    if not stale:
        return 0
    return int(await run(services, _FORGET, [key], *stale))
