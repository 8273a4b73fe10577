"""Fixed-window rate limits in Redis, shared by every process."""

from __future__ import annotations

import math

from core.errors import ApiError
from core.redis import Client, Lua

# INCR and the first PEXPIRE in one step, so a crash between them cannot leave a counter
# that never expires.
_HIT = Lua(
    """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}
"""
)


class RateLimiter:
    def __init__(self, redis: Client) -> None:
        self._redis = redis

    async def hit(self, key: str, limit: int, window_s: float) -> None:
        """Count one event on `key`; raise 429 once more than `limit` fall in the window."""
        count, ttl_ms = await _HIT(self._redis, [key], int(window_s * 1000))
        if int(count) > limit:
            retry = max(1, math.ceil(int(ttl_ms) / 1000))
            raise ApiError(
                429,
                "rate_limited",
                f"too many attempts; try again in {retry} s",
                {"retry_after": retry},
                headers={"Retry-After": str(retry)},
            )

    async def reset(self, key: str) -> None:
        await self._redis.delete(key)
