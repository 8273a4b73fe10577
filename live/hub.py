"""This process's side of the fan-out: the topics' channels (one sharded pub/sub connection
per Redis shard, see `core.pubsub`), the local subscribers of every topic, and the topic's
ticker while anybody here watches it.

A channel is subscribed only while this process has a subscriber of its topic. A frame
arrives once from Redis, already serialised and numbered, and is appended as the same
message object to every local socket's queue. When a shard's connection breaks (Redis
restarted, a replica took over), its channels are subscribed again (where their slots live
now) and every topic of theirs heals: the frames it missed come from the history, or, when
the history is gone, every local subscriber gets a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Coroutine
from typing import Any

import orjson

from core.pubsub import Subscriber
from core.redis import UNREACHABLE
from core.services import Services
from live import history, rooms
from live.connection import Connection, Message, text
from live.history import Recovery, Snapshot, TopicKeys
from live.once import Once
from live.ticker import COLD, Ticker

log = logging.getLogger("panen.live")

JOIN_TIMEOUT_S = 5.0
HEARTBEAT_MS = 15_000
WAIT_FAILED: tuple[type[BaseException], ...] = (TimeoutError, *UNREACHABLE)

# A subscriber is either live (the last seq it has, frames above go out) or joining (frames
# are held until its snapshot or recovery has gone out).
Held = list[tuple[int, Message]]


class Unavailable(Exception):
    """Redis cannot be reached right now."""


class Topic:
    __slots__ = ("buffer", "channel", "client_name", "confirmed", "last_seq", "name", "subs", "tk")

    def __init__(self, name: str, client_name: str, tk: TopicKeys) -> None:
        self.name = name
        self.client_name = client_name
        self.tk = tk
        self.channel = tk.channel.encode()
        self.subs: dict[Connection, int | Held] = {}
        self.last_seq = -1
        self.confirmed = asyncio.Event()
        self.buffer: list[bytes] | None = None  # frames held while the topic heals


class Hub:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.topics: dict[str, Topic] = {}
        self.by_channel: dict[bytes, Topic] = {}
        self.tickers: dict[str, Ticker] = {}
        self.subscriber = Subscriber(
            services.redis,
            self._on_message,
            self._on_confirmed,
            self._on_lost,
            self._on_back,
        )
        self.lock = asyncio.Lock()  # orders a topic's subscribe and its retirement
        self.tasks: list[asyncio.Task[None]] = []
        self.connections: set[Connection] = set()
        self.reconnects = 0
        self.background: set[asyncio.Task[None]] = set()
        self.cold: Once[rooms.State] = Once(fresh_s=1.0)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # lifecycle

    async def start(self) -> None:
        self.tasks = [asyncio.create_task(self._heartbeat(), name="hub-heartbeat")]

    async def stop(self) -> None:
        await self.subscriber.stop()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.gather(*(t.stop() for t in self.tickers.values()), return_exceptions=True)
        self.tickers.clear()
        with contextlib.suppress(*UNREACHABLE):
            await self.services.redis.delete(self._proc_key(self.owner))

    def _proc_key(self, owner: str) -> str:
        return self.services.keys("live", "proc", owner)

    async def _heartbeat(self) -> None:
        while True:
            with contextlib.suppress(*UNREACHABLE):
                await self.services.redis.set(self._proc_key(self.owner), b"1", px=HEARTBEAT_MS)
            await asyncio.sleep(HEARTBEAT_MS / 3000)

    # the channels

    def _on_lost(self, channels: list[bytes]) -> None:
        """Frames of these channels may be missed from now: hold what comes until healed."""
        for channel in channels:
            topic = self.by_channel.get(channel)
            if topic is not None:
                topic.confirmed.clear()
                if topic.buffer is None:
                    topic.buffer = []

    def _on_back(self, channels: list[bytes]) -> None:
        self.reconnects += 1
        topics = [t for c in channels if (t := self.by_channel.get(c)) is not None]
        log.info("live hub resubscribed %d topics", len(topics))
        for topic in topics:
            self._spawn(self._heal(topic))

    def _on_confirmed(self, channel: bytes) -> None:
        topic = self.by_channel.get(channel)
        if topic is not None:
            topic.confirmed.set()

    def _on_message(self, channel: bytes, data: bytes) -> None:
        topic = self.by_channel.get(channel)
        if topic is None:
            return
        if data:
            self._on_frame(topic, data)
        else:  # a producer's nudge: events wait in the inbox of a topic without a beat
            ticker = self.tickers.get(topic.name)
            if ticker is not None:
                ticker.wake.set()

    def _on_frame(self, topic: Topic, frame: bytes) -> None:
        if topic.buffer is not None:
            topic.buffer.append(frame)
            return
        seq = history.seq_of(frame)
        if 0 <= topic.last_seq < seq - 1:
            # A frame went missing between Redis and here: heal before going on.
            topic.buffer = [frame]
            self._spawn(self._heal(topic))
            return
        self._fan_out(topic, seq, frame)

    def _fan_out(self, topic: Topic, seq: int, frame: bytes) -> None:
        if seq <= topic.last_seq:
            return
        topic.last_seq = seq
        message = text(frame)
        for conn, sub in topic.subs.items():
            if type(sub) is int:
                if seq > sub:
                    conn.push(message)
            else:
                sub.append((seq, message))  # type: ignore[union-attr]

    async def _heal(self, topic: Topic) -> None:
        """Bring a topic's local subscribers up to date after frames were missed."""
        while topic.name in self.topics:
            try:
                await asyncio.wait_for(topic.confirmed.wait(), JOIN_TIMEOUT_S)
                found = await history.read(
                    self.services.redis, topic.tk, topic.last_seq if topic.last_seq >= 0 else None
                )
                break
            except WAIT_FAILED:
                await asyncio.sleep(0.5)
        else:
            return
        if isinstance(found, Recovery):
            for frame in found.frames:
                self._fan_out(topic, history.seq_of(frame), frame)
        else:
            message = text(await self._snapshot_frame(topic, found, None))
            for conn, sub in topic.subs.items():
                if type(sub) is int:
                    topic.subs[conn] = found.seq
                    conn.push(message)
            topic.last_seq = found.seq
        buffered, topic.buffer = topic.buffer or [], None
        for frame in buffered:
            self._on_frame(topic, frame)

    # subscribers

    async def join(
        self,
        conn: Connection,
        name: str,
        client_name: str,
        since: int | None,
        reply_to: str | None = None,
    ) -> None:
        """Subscribe `conn` to a topic: send it a snapshot or the frames after `since`, then
        every frame as it comes. Raises `Unavailable` when Redis is away. The `subscribed`
        frame carries `reply_to` as its `id`, the subscribe frame's."""
        topic = self.topics.get(name)
        if topic is None:
            topic = Topic(name, client_name, TopicKeys.of(self.services.keys, name))
            self.topics[name] = topic
            self.by_channel[topic.channel] = topic
            await self._subscribe(topic)
        held: Held = []
        topic.subs[conn] = held
        self._ensure_ticker(topic)
        try:
            await asyncio.wait_for(topic.confirmed.wait(), JOIN_TIMEOUT_S)
            found = await history.read(self.services.redis, topic.tk, since)
        except WAIT_FAILED as exc:
            self.leave(conn, name)
            raise Unavailable from exc
        if topic.subs.get(conn) is not held:
            return  # left while joining
        if isinstance(found, Recovery):
            conn.push_frame(_subscribed(topic, found.seq, True, reply_to))
            for frame in found.frames:
                conn.push_frame(frame)
        else:
            conn.push_frame(await self._snapshot_frame(topic, found, reply_to))
        if topic.last_seq < found.seq and topic.buffer is None:
            topic.last_seq = found.seq
        for seq, message in held:
            if seq > found.seq:
                conn.push(message)
        topic.subs[conn] = max(found.seq, held[-1][0] if held else 0)

    def leave(self, conn: Connection, name: str) -> None:
        topic = self.topics.get(name)
        if topic is None or topic.subs.pop(conn, None) is None or topic.subs:
            return
        del self.topics[name]
        self.by_channel.pop(topic.channel, None)
        self._spawn(self._retire(topic, self.tickers.pop(name, None)))

    async def _subscribe(self, topic: Topic) -> None:
        async with self.lock:
            await self.subscriber.subscribe(topic.channel)

    async def _retire(self, topic: Topic, ticker: Ticker | None) -> None:
        if ticker is not None:
            await ticker.stop()
        async with self.lock:
            if topic.name in self.topics:
                return  # somebody joined again meanwhile: keep the channel
            await self.subscriber.unsubscribe(topic.channel)

    def _ensure_ticker(self, topic: Topic) -> None:
        ticker = self.tickers.get(topic.name)
        if ticker is None:
            ticker = Ticker(
                self.services,
                self.owner,
                topic.name,
                topic.client_name,
                topic.tk,
                lambda: len(topic.subs),
            )
            self.tickers[topic.name] = ticker
        ticker.start()

    async def _cold(self, name: str) -> rooms.State:
        state = await rooms.cold_state(self.services, name)
        rooms.finish(state)
        return state

    async def _snapshot_frame(self, topic: Topic, found: Snapshot, reply_to: str | None) -> bytes:
        state: dict[str, Any] | None = None
        if found.state is not None and found.state != COLD:
            state = orjson.loads(found.state)
        if state is None:
            state = await self.cold.get(topic.name, lambda: self._cold(topic.name))
        snapshot = b'{"totals":' + orjson.dumps(state["totals"])
        if rooms.kind_of(topic.name) == "session":
            snapshot += b',"chat":[' + b",".join(found.chat) + b"]"
            snapshot += b',"events":' + orjson.dumps(state.get("recent", []))
        snapshot += b"}"
        return (
            _subscribed(topic, found.seq, False, reply_to)[:-1] + b',"snapshot":' + snapshot + b"}"
        )


def _subscribed(topic: Topic, seq: int, recovered: bool, reply_to: str | None) -> bytes:
    out: dict[str, Any] = {
        "type": "subscribed",
        "topic": topic.client_name,
        "seq": seq,
        "recovered": recovered,
    }
    if reply_to is not None:
        out["id"] = reply_to
    return orjson.dumps(out)
