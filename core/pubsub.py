"""Receiving the channels this process needs: sharded pub/sub, one connection per shard.

Messages are published with SPUBLISH (see `core.redis`): a room's frames, the wake-ups of
duplicate orders. A Redis Cluster delivers SPUBLISH only inside the shard that owns the
channel's slot, where classic PUBLISH is copied to every node. So a `Subscriber` holds one
plain connection to each primary that owns a channel it subscribes, and SSUBSCRIBEs there
(a process has two: the live hub's, and its `Wakeups`'). On one Redis there is one shard:
the Redis itself.

redis-py's asyncio cluster client has no pub/sub, and its 5.x line (which arq needs) has no
SSUBSCRIBE on the asyncio PubSub; a subscription connection is small enough to own: send
SSUBSCRIBE, read pushes, PING when quiet.

When a shard's connection breaks (the node restarted or died, a replica took over) or the
shard tells us a channel has moved away (`sunsubscribe` we did not ask for), the channels
are reported lost, the slot map is read again, every channel goes to the shard that owns it
now, and once subscribed there it is reported back: the hub heals its topics from history;
a waiter that may have missed its wake-up looks for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection

from core.redis import UNREACHABLE, Client

log = logging.getLogger("panen.pubsub")

PING_EVERY_S = 5.0  # a quiet connection is probed this often; two unanswered probes: gone
BACKOFF_MAX_S = 2.0

Channels = Callable[[list[bytes]], None]


class _Shard:
    """One subscription connection to one primary, and the channels it carries."""

    def __init__(self, name: str, connect: Callable[[], AbstractConnection]) -> None:
        self.name = name
        self.connect = connect
        self.channels: set[bytes] = set()
        self.conn: AbstractConnection | None = None
        self.lock = asyncio.Lock()  # orders SSUBSCRIBE/SUNSUBSCRIBE with (re)connecting
        self.task: asyncio.Task[None] | None = None
        self.leaving: set[bytes] = set()  # SUNSUBSCRIBE sent by us, not yet confirmed


class Subscriber:
    """Keeps this process subscribed to `channels` wherever their slots live.

    `on_message(channel, data)` gets each published message; `on_confirmed(channel)` says a
    channel is subscribed (first or again); `on_lost(channels)` says messages may have been
    missed from now on; `on_back(channels)` says they are subscribed again after a loss.
    """

    def __init__(
        self,
        redis: Client,
        on_message: Callable[[bytes, bytes], None],
        on_confirmed: Callable[[bytes], None],
        on_lost: Channels,
        on_back: Channels,
    ) -> None:
        self.redis = redis  # the process's client: its slot map and its connection settings
        self.on_message = on_message
        self.on_confirmed = on_confirmed
        self.on_lost = on_lost
        self.on_back = on_back
        self.shards: dict[str, _Shard] = {}
        self.where: dict[bytes, _Shard] = {}
        self.stopped = False
        self.moves = 0  # channels that followed a slot to another shard (a failover, a reshard)

    # the shard of a channel

    async def _route(self, channel: bytes) -> _Shard:
        redis = self.redis
        if isinstance(redis, RedisCluster):
            await redis.initialize()
            node = redis.get_node_from_key(channel)
            name = node.name

            def connect() -> AbstractConnection:
                kwargs = {**node.connection_kwargs, "health_check_interval": 0}
                return node.connection_class(**kwargs)  # type: ignore[no-any-return]

        else:
            pool = redis.connection_pool
            name = "redis"

            def connect() -> AbstractConnection:
                # No health check: its PING would read a pushed message as the reply.
                return pool.connection_class(
                    **{**pool.connection_kwargs, "health_check_interval": 0}
                )

        shard = self.shards.get(name)
        if shard is None:
            shard = self.shards[name] = _Shard(name, connect)
        return shard

    async def _refresh(self) -> None:
        """Read the slot map again (a failover or a reshard moved slots). On a cluster client
        of `core.redis`, `aclose` only asks for that (as redis-py does itself after a
        connection error); it closes no connection."""
        if isinstance(self.redis, RedisCluster):
            await self.redis.aclose()
            try:
                await self.redis.initialize()
            except Exception as exc:  # the cluster is still electing: the next try reads it
                log.info("slot map not read yet (%s)", exc)

    # what a user of it asks (the live hub, the duplicate orders waiting for an answer)

    async def subscribe(self, channel: bytes) -> None:
        """Subscribe `channel` (confirmed through `on_confirmed`). If its shard is away, it
        is subscribed once the shard is back."""
        try:
            shard = await self._route(channel)
        except UNREACHABLE:
            # No slot map yet (the cluster is away): keep it wanted; a later join retries.
            log.warning("no shard found for %r yet", channel)
            return
        self.where[channel] = shard
        async with shard.lock:
            shard.channels.add(channel)
            self._running(shard)
            await _send(shard, "SSUBSCRIBE", channel)

    async def unsubscribe(self, channel: bytes) -> None:
        shard = self.where.pop(channel, None)
        if shard is None:
            return
        async with shard.lock:
            shard.channels.discard(channel)
            if shard.conn is not None:
                shard.leaving.add(channel)
            await _send(shard, "SUNSUBSCRIBE", channel)

    async def stop(self) -> None:
        self.stopped = True
        for shard in self.shards.values():
            if shard.task is not None:
                shard.task.cancel()
        for shard in self.shards.values():
            if shard.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await shard.task

    # one shard's connection

    async def _run(self, shard: _Shard) -> None:
        backoff = 0.1
        lost = False
        while not self.stopped:
            conn = shard.connect()
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                async with shard.lock:
                    shard.leaving.clear()
                    if shard.channels:
                        # One command per channel: a cluster refuses SSUBSCRIBE of
                        # channels in different slots, even on the one node.
                        commands = [("SSUBSCRIBE", channel) for channel in shard.channels]
                        await conn.send_packed_command(conn.pack_commands(commands))
                    shard.conn = conn
                    back = list(shard.channels)
                if lost:
                    self.on_back(back)
                    lost = False
                backoff = 0.1
                await self._read(shard, conn)
            except asyncio.CancelledError:
                shard.conn = None
                await _disconnect(conn)
                raise
            except Exception as exc:  # a lost node, or anything else: never a dead reader
                shard.conn = None
                await _disconnect(conn)
                gone = list(shard.channels)
                if not isinstance(exc, UNREACHABLE):
                    log.exception("pub/sub shard %s failed; resubscribing", shard.name)
                if gone:
                    log.warning("pub/sub shard %s lost (%s); resubscribing", shard.name, exc)
                    self.on_lost(gone)
                    lost = True
                    await self._refresh()
                    await self._reroute(shard, gone)
            if not shard.channels:
                # Nothing left to carry here (its slots moved, or nobody watches): stop;
                # a later subscription starts it again.
                if self.shards.get(shard.name) is shard:
                    del self.shards[shard.name]
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _running(self, shard: _Shard) -> None:
        self.shards[shard.name] = shard
        if shard.task is None or shard.task.done():
            shard.task = asyncio.create_task(self._run(shard), name=f"shard-{shard.name}")

    async def _reroute(self, shard: _Shard, channels: list[bytes]) -> None:
        """Send each channel to the shard that owns its slot now; it heals once there."""
        for channel in channels:
            if self.where.get(channel) is not shard:
                continue  # unsubscribed meanwhile
            try:
                to = await self._route(channel)
            except UNREACHABLE:
                continue  # still unknown: stays here and is tried again after backoff
            if to is shard:
                continue
            self.moves += 1
            shard.channels.discard(channel)
            self.where[channel] = to
            async with to.lock:
                to.channels.add(channel)
                self._running(to)
                await _send(to, "SSUBSCRIBE", channel)
            self.on_back([channel])

    async def _read(self, shard: _Shard, conn: AbstractConnection) -> None:
        unanswered = 0
        while True:
            push: Any = await conn.read_response(timeout=PING_EVERY_S)
            if push is None:
                if unanswered >= 2:
                    raise ConnectionError(f"shard {shard.name} stopped answering")
                unanswered += 1
                await conn.send_command("PING")
                continue
            unanswered = 0
            kind = push[0]
            if kind == b"smessage":
                self.on_message(push[1], push[2])
            elif kind == b"ssubscribe":
                if push[1] in shard.channels:
                    self.on_confirmed(push[1])
            elif kind == b"sunsubscribe":
                channel = push[1]
                if channel in shard.leaving:
                    shard.leaving.discard(channel)
                elif channel in shard.channels:
                    # Not asked for: the slot left this node (failed over, resharded).
                    self.on_lost([channel])
                    await self._refresh()
                    await self._reroute(shard, [channel])
                    if channel in shard.channels:  # the map has not caught up: ask again
                        await asyncio.sleep(0.1)
                        await conn.send_command("SSUBSCRIBE", channel)


async def _send(shard: _Shard, *command: str | bytes) -> None:
    """Send on the shard's connection if it has one. A connection breaking under the send
    is the reader's to notice: it reconnects and subscribes what the shard carries then."""
    if shard.conn is not None:
        with contextlib.suppress(Exception):
            await shard.conn.send_command(*command)


async def _disconnect(conn: AbstractConnection) -> None:
    with contextlib.suppress(*UNREACHABLE, RuntimeError):
        await conn.disconnect(nowait=True)


class Waiter:
    """One waiter of `Wakeups`: `next` returns when its name was published on its channel,
    when it may have missed that (its channel was confirmed or lost meanwhile), or after
    `within_s`, whichever is first. Use it as a context manager: it stops waiting on exit."""

    __slots__ = ("_woken", "channel", "name", "poked", "wakeups")

    def __init__(self, wakeups: Wakeups, channel: bytes, name: bytes) -> None:
        self.wakeups = wakeups
        self.channel = channel
        self.name = name
        self.poked = False
        self._woken: asyncio.Future[None] | None = None

    @property
    def listening(self) -> bool:
        """Whether a publication of its name would reach it now: until its channel is
        confirmed, and after it was lost, it would not, and the waiter must look for
        itself sooner."""
        return self.channel in self.wakeups.listening

    def poke(self) -> None:
        self.poked = True
        if self._woken is not None and not self._woken.done():
            self._woken.set_result(None)

    async def next(self, within_s: float) -> None:
        if not self.poked:
            loop = asyncio.get_running_loop()
            self._woken = woken = loop.create_future()
            # A timer, not asyncio.timeout: no cancellation to unwind on the common path.
            timer = loop.call_later(within_s, _settle, woken)
            try:
                await woken
            finally:
                timer.cancel()
                self._woken = None
        self.poked = False

    def __enter__(self) -> Waiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wakeups._leave(self)


def _settle(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)


class Wakeups:
    """Waiters of this process woken by name when any process publishes the name on their
    channel (SPUBLISH; a message is names separated by newlines).

    A wake-up is a hint, never the answer: a woken waiter looks for what it waits for, and
    so does one whose timer ran out. It is subscribed to a channel while the channel has
    waiters, and LINGER_S after the last one left (a flash sale's waiters come and go by
    the hundred; subscribing for each would churn). A lost message costs latency, not
    correctness: a waiter that is not `listening` is expected to use a short timer."""

    LINGER_S = 30.0
    RETRY_S = 1.0  # a subscription that could not be placed (no slot map) is tried again

    def __init__(self, redis: Client) -> None:
        self.subscriber = Subscriber(
            redis, self._on_message, self._on_confirmed, self._on_lost, self._on_back
        )
        self.waiters: dict[bytes, dict[bytes, set[Waiter]]] = {}
        self.listening: set[bytes] = set()
        self.closed = False
        self._idle: dict[bytes, asyncio.TimerHandle] = {}
        # The channels wanted (from a first waiter to the end of the linger), and when each
        # was last asked for.
        self._tried: dict[bytes, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def wait(self, channel: bytes, name: bytes) -> Waiter:
        """A waiter for `name` on `channel`, registered now: a publication from this moment
        on wakes it (once the channel is listened to)."""
        waiter = Waiter(self, channel, name)
        if self.closed:
            return waiter  # never listening: it keeps to its timer
        names = self.waiters.get(channel)
        if names is None:
            names = self.waiters[channel] = {}
            idle = self._idle.pop(channel, None)
            if idle is not None:
                idle.cancel()  # still subscribed from its last waiters
        # A channel is subscribed when first wanted; one whose subscription could not be
        # placed (a cluster without a slot map) is asked for again, at most once a RETRY_S.
        tried = self._tried.get(channel)
        if tried is None or channel not in self.subscriber.where:
            now = asyncio.get_running_loop().time()
            if tried is None or now - tried >= self.RETRY_S:
                self._tried[channel] = now
                self._spawn(self.subscriber.subscribe(channel))
        names.setdefault(name, set()).add(waiter)
        return waiter

    def _leave(self, waiter: Waiter) -> None:
        names = self.waiters.get(waiter.channel)
        if names is None:
            return
        same = names.get(waiter.name)
        if same is not None:
            same.discard(waiter)
            if not same:
                del names[waiter.name]
        if not names:
            del self.waiters[waiter.channel]
            if self.closed:
                return
            loop = asyncio.get_running_loop()
            self._idle[waiter.channel] = loop.call_later(
                self.LINGER_S, self._unsubscribe, waiter.channel
            )

    def _unsubscribe(self, channel: bytes) -> None:
        self._idle.pop(channel, None)
        if channel not in self.waiters:
            self.listening.discard(channel)
            self._tried.pop(channel, None)
            self._spawn(self.subscriber.unsubscribe(channel))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _poke_all(self, channel: bytes) -> None:
        for same in self.waiters.get(channel, {}).values():
            for waiter in same:
                waiter.poke()

    # what the subscriber reports

    def _on_message(self, channel: bytes, data: bytes) -> None:
        names = self.waiters.get(channel)
        if names:
            for name in data.split(b"\n"):
                for waiter in names.get(name, ()):
                    waiter.poke()

    def _on_confirmed(self, channel: bytes) -> None:
        if channel in self._tried and not self.closed:  # still wanted
            self.listening.add(channel)
            # What was published before the subscription took may have been missed.
            self._poke_all(channel)

    def _on_lost(self, channels: list[bytes]) -> None:
        for channel in channels:
            self.listening.discard(channel)
            self._poke_all(channel)

    def _on_back(self, channels: list[bytes]) -> None:
        for channel in channels:
            self._poke_all(channel)  # confirmed again soon; what fell between is looked for

    async def aclose(self) -> None:
        """Stop listening: the waiters left are told (they keep to their timers) and the
        subscriptions are closed."""
        self.closed = True
        self.listening.clear()
        for channel in list(self.waiters):
            self._poke_all(channel)
        for idle in self._idle.values():
            idle.cancel()
        self._idle.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.subscriber.stop()
