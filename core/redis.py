"""The Redis client, with `REDIS_PREFIX` applied to every key and channel."""

from __future__ import annotations

from redis.asyncio import Redis


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
    client: Redis = Redis.from_url(url, health_check_interval=15, socket_keepalive=True)
    return client
