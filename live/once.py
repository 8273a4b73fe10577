"""One call in flight per key: a thousand viewers joining a cold room make one database
read, not a thousand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Once(Generic[T]):
    """Callers of `get(key, make)` while a call for `key` runs, or within `fresh_s` after it
    succeeded, share its result; a failed call is forgotten at once."""

    def __init__(self, fresh_s: float = 0.0, max_keys: int = 10_000) -> None:
        self.fresh_s = fresh_s
        self.max_keys = max_keys
        self.calls: dict[str, tuple[float, asyncio.Future[T]]] = {}

    async def get(self, key: str, make: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        entry = self.calls.get(key)
        if entry is not None and (not entry[1].done() or now - entry[0] < self.fresh_s):
            return await asyncio.shield(entry[1])
        if len(self.calls) >= self.max_keys:
            self.calls = {k: v for k, v in self.calls.items() if not v[1].done()}
        future: asyncio.Future[T] = asyncio.ensure_future(make())
        self.calls[key] = (now, future)
        future.add_done_callback(lambda f: self._settled(key, f))
        return await asyncio.shield(future)

    def _settled(self, key: str, future: asyncio.Future[T]) -> None:
        if future.cancelled() or future.exception() is not None:
            entry = self.calls.get(key)
            if entry is not None and entry[1] is future:
                del self.calls[key]
