"""Coalescing a process's concurrent calls into batches.

In a stampede hundreds of requests want the same round trip (a Redis script, an INSERT)
within milliseconds; one round trip each spends the time on packing, syscalls and wake-ups
rather than on the work. A `Batcher` sends the first call at once; calls that arrive while
`max_in_flight` batches are out wait and leave together, up to `max_batch` at a time. A lone
request pays no timer's delay, and under load the batches grow with the load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class Batcher(Generic[In, Out]):
    def __init__(
        self,
        run: Callable[[list[In]], Awaitable[Sequence[Out]]],
        *,
        max_batch: int,
        max_in_flight: int,
    ) -> None:
        """`run` gets the items of one batch and returns one result per item, in order. A
        result that is an exception fails only its own caller; if `run` raises, every
        caller in that batch gets the exception."""
        self._run = run
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._queue: list[tuple[In, asyncio.Future[Out]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: In) -> Out:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        self._queue.append((item, future))
        if self._in_flight < self.max_in_flight:
            self._in_flight += 1
            task = loop.create_task(self._drain())
            self._tasks.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                try:
                    results = await self._run([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
                except Exception as exc:  # this batch fails; the ones behind it still go
                    _fail(batch, exc)
                    continue
                except BaseException as exc:  # cancelled (shutting down): nobody is left
                    _fail(batch + self._queue, exc)
                    self._queue.clear()
                    raise
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its caller may have given up
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._in_flight -= 1


def _fail(batch: list[tuple[In, asyncio.Future[Out]]], exc: BaseException) -> None:
    for _, future in batch:
        if future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exc)
