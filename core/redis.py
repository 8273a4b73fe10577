"""The Redis client, with `REDIS_PREFIX` applied to every key and channel."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError


class Keys:
    """Builds every Redis key and channel name, so a prefix can never be forgotten.

    Keys of one live session carry a `{session-id}` hash tag, so that on Redis Cluster
    everything a session touches (stock, reservations, room state) lives on one shard.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def session(self, session_id: str, *parts: str) -> str:
        return ":".join((self.prefix, "s", "{" + session_id + "}", *parts))

    def channel(self, topic: str) -> str:
        return f"{self.prefix}:ch:{topic}"


def create_redis(url: str) -> Redis:
    # decode_responses stays off: payloads are bytes from orjson, sent on as they are.
    # Short timeouts: a request that needs a Redis that is away should hear so (and answer
    # 503) in seconds, not wait on the kernel. Pub/sub reads pass their own timeout.
    client: Redis = Redis.from_url(
        url,
        health_check_interval=15,
        socket_keepalive=True,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
    )
    return client


Arg = str | bytes | int


class Lua:
    """A Lua script, sent as EVALSHA and with its body only when this Redis has not seen it
    (after a restart or a flush). Made once per script, not per call: hashing the body and
    building a script object on every call was a visible cost on hot paths."""

    def __init__(self, body: str) -> None:
        self.body = body
        # SHA-1 is what Redis names scripts by, not a security measure.
        self.sha = hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, redis: Redis, keys: Sequence[str], *args: Arg) -> Any:
        try:
            call = redis.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[arg-type]
            return await cast(Awaitable[Any], call)
        except NoScriptError:
            call = redis.eval(self.body, len(keys), *keys, *args)  # type: ignore[arg-type]
            return await cast(Awaitable[Any], call)


async def run_scripts(
    redis: Redis, calls: Sequence[tuple[Lua, Sequence[str], Sequence[Arg]]]
) -> list[Any]:
    """Several script calls in one round trip (not a transaction); one reply each. A call
    that found its script missing is sent again with the body; only those are repeated."""
    if not calls:
        return []
    if len(calls) == 1:  # a pipeline would only add its own overhead
        script, keys, args = calls[0]
        return [await script(redis, keys, *args)]
    pipe = redis.pipeline(transaction=False)
    for script, keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)  # type: ignore[arg-type]
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    for n, reply in enumerate(replies):
        if isinstance(reply, NoScriptError):
            script, keys, args = calls[n]
            call = redis.eval(script.body, len(keys), *keys, *args)  # type: ignore[arg-type]
            replies[n] = await cast(Awaitable[Any], call)
        elif isinstance(reply, Exception):
            raise reply
    return replies
