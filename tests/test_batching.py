"""The batcher that coalesces a process's concurrent round trips (core/batching.py)."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from core.batching import Batcher
from core.redis import alone_if_unreachable


class Recorder:
    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on

    async def run(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await asyncio.sleep(0.01)  # a round trip, during which more calls arrive
        if self.fail_on in items:
            raise ValueError("boom")
        return [i * 10 for i in items]


async def test_concurrent_calls_leave_in_few_batches_and_each_gets_its_own_result():
    rec = Recorder()
    batcher = Batcher(rec.run, max_batch=50, max_in_flight=1)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(120)))
    assert results == [i * 10 for i in range(120)]
    # Calls made in the same turn of the loop leave together, at most 50 at a time.
    assert [len(b) for b in rec.batches] == [50, 50, 20]
    assert [i for b in rec.batches for i in b] == list(range(120))  # arrival order kept


async def test_a_lone_call_is_sent_at_once_without_waiting_for_company():
    rec = Recorder()
    batcher = Batcher(rec.run, max_batch=50, max_in_flight=2)
    assert await asyncio.wait_for(batcher.submit(7), timeout=0.5) == 70
    assert rec.batches == [[7]]


async def test_a_failing_batch_fails_only_its_own_callers_and_the_next_batch_still_goes():
    rec = Recorder(fail_on=0)
    batcher = Batcher(rec.run, max_batch=10, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0.001)  # [0] is out; the next ones wait behind it
    results = await asyncio.gather(*(batcher.submit(i) for i in range(1, 5)))
    with pytest.raises(ValueError):
        await first
    assert rec.batches == [[0], [1, 2, 3, 4]]
    assert results == [10, 20, 30, 40]
    assert await batcher.submit(9) == 90  # and the batcher still works


async def test_a_caller_that_gives_up_does_not_disturb_the_others_in_its_batch():
    rec = Recorder()
    batcher = Batcher(rec.run, max_batch=10, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit(1))
    others = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    others[0].cancel()
    assert await first == 10
    assert await others[1] == 30
    with pytest.raises(asyncio.CancelledError):
        await others[0]


async def test_a_run_that_returns_the_wrong_number_of_results_is_an_error_not_a_misanswer():
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher = Batcher(short, max_batch=10, max_in_flight=1)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_a_batch_redis_cannot_reach_is_retried_item_by_item_and_only_their_callers_fail():
    """On a cluster a batch spans shards: one shard down must fail only the calls whose
    keys live there (commerce.stock's kept answers and duplicate polls)."""
    down = {3, 7}  # the items whose shard cannot be reached

    async def run(items: list[int]) -> list[int]:
        await asyncio.sleep(0)
        if down & set(items):
            raise RedisConnectionError("shard down")
        return [i * 10 for i in items]

    batcher = Batcher(lambda items: alone_if_unreachable(run, items), max_batch=50, max_in_flight=1)
    got = await asyncio.gather(*(batcher.submit(i) for i in range(10)), return_exceptions=True)
    assert [g for n, g in enumerate(got) if n not in down] == [
        n * 10 for n in range(10) if n not in down
    ]
    assert all(isinstance(got[n], RedisConnectionError) for n in down)
    with pytest.raises(RedisConnectionError):  # one item alone: its own error
        await alone_if_unreachable(run, [3])

    async def broken(items: list[int]) -> list[int]:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):  # anything else still fails the batch
        await alone_if_unreachable(broken, [1, 2])
