"""Wake-ups by name over sharded pub/sub (core/pubsub.py `Wakeups`), on a real Redis."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from core.pubsub import Waiter, Wakeups
from core.redis import Client, close, create_redis
from core.settings import Settings


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Client]:
    client = create_redis(settings.redis_url)
    yield client
    await close(client)


@pytest.fixture
async def wakeups(redis: Client) -> AsyncIterator[Wakeups]:
    w = Wakeups(redis)
    yield w
    await w.aclose()


def channel() -> bytes:
    return f"panen_test_wake:{{{secrets.token_hex(4)}}}".encode()


async def until(check: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.01)


async def listening(waiter: Waiter) -> None:
    await until(lambda: waiter.listening)
    await waiter.next(0)  # the confirmation's own poke


async def subscribers(redis: Client, ch: bytes) -> int:
    counts = await redis.execute_command("PUBSUB", "SHARDNUMSUB", ch)
    return int(counts[1])


async def cut_off(wakeups: Wakeups) -> None:
    """Kill this subscriber's own connections (not every pub/sub client of a Redis other
    test runs share), from a connection to the same node."""
    for shard in list(wakeups.subscriber.shards.values()):
        assert shard.conn is not None
        host, port = shard.conn._writer.get_extra_info("sockname")[:2]  # type: ignore[attr-defined]
        killer = shard.connect()
        await killer.connect()  # type: ignore[no-untyped-call]
        try:
            await killer.send_command("CLIENT", "KILL", "ADDR", f"{host}:{port}")
            assert await killer.read_response() == 1  # clients killed
        finally:
            await killer.disconnect()


async def test_a_waiter_wakes_when_its_name_is_published_and_not_for_another_name(redis, wakeups):
    ch = channel()
    with wakeups.wait(ch, b"order-a") as a, wakeups.wait(ch, b"order-b") as b:
        await listening(a)
        await b.next(0)  # the confirmation woke both
        await redis.execute_command("SPUBLISH", ch, b"order-x\norder-a")
        async with asyncio.timeout(5):
            await a.next(60)  # the timer alone would take a minute
        assert not b.poked
        await redis.execute_command("SPUBLISH", ch, b"order-b")
        async with asyncio.timeout(5):
            await b.next(60)


async def test_a_waiter_not_yet_listening_is_told_when_it_may_have_missed_its_name(wakeups):
    ch = channel()
    with wakeups.wait(ch, b"n") as waiter:
        assert not waiter.listening  # SSUBSCRIBE is not confirmed yet
        async with asyncio.timeout(5):
            await waiter.next(60)  # woken by the confirmation: look once more
        assert waiter.listening


async def test_a_lost_subscription_wakes_its_waiters_and_is_listened_to_again(redis, wakeups):
    ch = channel()
    with wakeups.wait(ch, b"n") as waiter:
        await listening(waiter)
        await cut_off(wakeups)
        async with asyncio.timeout(5):
            await waiter.next(60)  # lost: what was published meanwhile is looked for
        await listening(waiter)
        await redis.execute_command("SPUBLISH", ch, b"n")
        async with asyncio.timeout(5):
            await waiter.next(60)


async def test_a_channel_is_left_only_after_its_last_waiter_and_the_linger(redis, wakeups):
    wakeups.LINGER_S = 1.0
    ch = channel()
    with wakeups.wait(ch, b"one") as first:
        await listening(first)
    with wakeups.wait(ch, b"two") as second:  # within the linger: still subscribed
        assert second.listening
    assert await subscribers(redis, ch) == 1
    await until(lambda: ch not in wakeups.listening)
    deadline = asyncio.get_running_loop().time() + 5
    while await subscribers(redis, ch):
        assert asyncio.get_running_loop().time() < deadline, "still subscribed"
        await asyncio.sleep(0.02)
    assert wakeups.waiters == {}


async def test_a_subscription_that_could_not_be_placed_is_asked_for_again(wakeups, monkeypatch):
    """A cluster without a slot map yet: the first subscribe gives up; a waiter arriving
    after RETRY_S asks again (one arriving sooner does not: no storm of retries)."""
    wakeups.RETRY_S = 0.3
    ch = channel()
    route = wakeups.subscriber._route
    failures = [RedisConnectionError("no slot map yet")]

    async def flaky(c: bytes):  # type: ignore[no-untyped-def]
        if failures:
            raise failures.pop()
        return await route(c)

    monkeypatch.setattr(wakeups.subscriber, "_route", flaky)
    with wakeups.wait(ch, b"one") as first:
        await asyncio.sleep(0.1)
        with wakeups.wait(ch, b"two"):
            await asyncio.sleep(0.1)
            assert not first.listening and ch not in wakeups.subscriber.where
        await asyncio.sleep(0.2)
        with wakeups.wait(ch, b"three") as later:
            await listening(later)
            assert first.listening


async def test_closing_tells_the_waiters_left_and_leaves_every_channel(redis):
    wakeups = Wakeups(redis)
    ch = channel()
    with wakeups.wait(ch, b"n") as waiter:
        await listening(waiter)
        await wakeups.aclose()
        assert not waiter.listening
        async with asyncio.timeout(5):
            await waiter.next(60)  # told: it keeps to its (short) timer from now on
    with wakeups.wait(ch, b"m") as after:
        assert not after.listening
    assert wakeups.waiters == {} and not wakeups._idle
    deadline = asyncio.get_running_loop().time() + 5
    while await subscribers(redis, ch):
        assert asyncio.get_running_loop().time() < deadline, "still subscribed"
        await asyncio.sleep(0.02)
