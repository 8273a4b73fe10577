"""Wake-ups by name over sharded pub/sub (core/pubsub.py `Wakeups`), on a real Redis."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

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


async def until(check, within_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(within_s):
        while not check():
            await asyncio.sleep(0.01)


async def listening(waiter: Waiter) -> None:
    await until(lambda: waiter.listening)
    await waiter.next(0)  # the confirmation's own poke


async def subscribers(redis: Client, ch: bytes) -> int:
    counts = await redis.execute_command("PUBSUB", "SHARDNUMSUB", ch)
    return int(counts[1])


async def test_a_waiter_wakes_when_its_name_is_published_and_not_for_another_name(
    redis, wakeups
):
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
        await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        async with asyncio.timeout(5):
            await waiter.next(60)  # lost: what was published meanwhile is looked for
        await listening(waiter)
        await redis.execute_command("SPUBLISH", ch, b"n")
        async with asyncio.timeout(5):
            await waiter.next(60)


async def test_a_channel_is_left_only_after_its_last_waiter_and_the_linger(redis, wakeups):
    wakeups.LINGER_S = 0.3
    ch = channel()
    with wakeups.wait(ch, b"one") as first:
        await listening(first)
    with wakeups.wait(ch, b"two") as second:  # within the linger: still subscribed
        assert second.listening
    assert await subscribers(redis, ch) == 1
    await until(lambda: ch not in wakeups.listening)

    async def gone() -> None:
        while await subscribers(redis, ch):
            await asyncio.sleep(0.02)

    async with asyncio.timeout(5):
        await gone()
    assert wakeups.waiters == {}
