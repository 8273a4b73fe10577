"""The Redis client (one Redis or a Redis Cluster), with `REDIS_PREFIX` applied to every key
and channel.

On a cluster every key a script or a pipeline touches together carries one hash tag, so it
lives in one slot: a session's (`{session-id}`), a topic's, a user's. Frames are published
with SPUBLISH on a channel with the same tag, so a cluster routes each to the one shard that
holds the topic instead of broadcasting it to every node (`core.pubsub` subscribes).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, NodesManager, RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from core.settings import CLUSTER_SCHEME, cluster_nodes

# One Redis or a cluster: both speak the same commands; a cluster routes each by its key.
Client = Redis | RedisCluster

# What an unreachable Redis raises: a cluster that cannot find a node for a slot raises an
# exception outside RedisError's tree.
UNREACHABLE: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)
T = TypeVar("T")
R = TypeVar("R")


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

    def topic(self, topic: str, *parts: str) -> str:
        """A key of a live topic (`session:{id}`, `farmer:{id}`, `me:{id}`): a session's
        shares the session's hash tag with its stock and reservations."""
        kind, _, ident = topic.partition(":")
        if kind == "session" and ident:
            return self.session(ident, "live", *parts)
        return self("live", "{" + topic + "}", *parts)

    def channel(self, topic: str) -> str:
        """A topic's pub/sub channel, in its topic's slot (a script publishes on it)."""
        kind, _, ident = topic.partition(":")
        if kind == "session" and ident:
            return f"{self.prefix}:ch:session:{{{ident}}}"
        return f"{self.prefix}:ch:{{{topic}}}"


# decode_responses stays off: payloads are bytes from orjson, sent on as they are. Short
# timeouts: a request that needs a Redis that is away should hear so (and answer 503) in
# seconds, not wait on the kernel. Pub/sub reads pass their own timeout.
_TIMEOUTS: dict[str, Any] = {
    "socket_keepalive": True,
    "socket_connect_timeout": 2.0,
    "socket_timeout": 5.0,
}


class _Cluster(RedisCluster):
    """redis-py 5's asyncio cluster client, made to ride out a failover.

    After any connection error it calls `aclose()` to have the slot map read again, which
    closes every node's connections: the commands other tasks have in flight on healthy
    shards then fail ("handler is closed", a pipeline with replies missing), and a reply
    lost that way can leave a reservation nobody knows of. Here that call only asks for
    the map to be read again; the nodes that left the map are disconnected by redis-py
    when it reads it. Closing everything is `close_all()`, at the process's end.

    Reading the map again also asks the default node for `COMMAND` (the same answer every
    time), and during a failover that node may be the dead one, which failed every
    command on every shard until the failover ended: asked once only here."""

    async def aclose(self) -> None:
        self._initialize = True

    async def close_all(self) -> None:
        await RedisCluster.aclose(self)

    async def initialize(self) -> RedisCluster:
        if self._initialize:
            if not self._lock:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._initialize:
                    await self.nodes_manager.initialize()
                    if not self.commands_parser.commands:
                        await self.commands_parser.initialize(self.nodes_manager.default_node)
                    self._initialize = False
        return self


class _Nodes(NodesManager):
    """redis-py 5 reads the slot map into new node objects and disconnects the old ones,
    even for nodes that are still there: every command in flight on a healthy shard then
    breaks ("Connection closed by server"). Nodes still in the map keep their object and
    their connections; only nodes that left it are disconnected."""

    __slots__ = ()  # the same layout, so the manager RedisCluster made can become one

    def set_nodes(
        self,
        old: dict[str, ClusterNode],
        new: dict[str, ClusterNode],
        remove_old: bool = False,
    ) -> None:
        if old is self.nodes_cache:
            for name, node in list(new.items()):
                prior = old.get(name)
                if prior is not None and prior is not node:
                    prior.server_type = node.server_type
                    new[name] = prior
            remapped: dict[int, list[ClusterNode]] = {}
            for slot, nodes in self.slots_cache.items():
                found = remapped.get(id(nodes))
                if found is None:
                    found = remapped[id(nodes)] = [new[n.name] for n in nodes]
                self.slots_cache[slot] = found
        super().set_nodes(old, new, remove_old)


class _Snapshots(dict[str, ClusterNode]):
    """redis-py 5's cluster client reads its seed nodes in a loop that awaits, while a
    command that met a dead node removes that node from them: "dictionary changed size
    during iteration" in the middle of a failover. Iterating a copy, as later redis-py does,
    is all it needs (redis-py 6 is out of reach while arq pins below it)."""

    def values(self) -> list[ClusterNode]:  # type: ignore[override]
        return list(super().values())


def is_cluster(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEME)


def create_redis(url: str) -> Client:
    if is_cluster(url):
        seeds = cluster_nodes(url)
        cluster: RedisCluster = _Cluster(
            startup_nodes=[ClusterNode(host, port) for host, port in seeds.nodes],
            username=seeds.username,
            password=seeds.password,
            # A failover takes the cluster a second or two: retry a command that met it
            # (redis-py refreshes the slot map between tries) before answering 503.
            cluster_error_retry_attempts=5,
            **_TIMEOUTS,
        )
        manager = cluster.nodes_manager
        manager.__class__ = _Nodes  # made by RedisCluster itself; only set_nodes differs
        manager.startup_nodes = _Snapshots(manager.startup_nodes)
        return cluster
    client: Redis = Redis.from_url(url, health_check_interval=15, **_TIMEOUTS)
    return client


async def close(redis: Client) -> None:
    """Close the client and every connection it holds (a process's end)."""
    if isinstance(redis, _Cluster):
        await redis.close_all()
    else:
        await redis.aclose()


async def ping_primaries(redis: Client) -> None:
    """Raise unless every primary answers (a cluster with a shard down cannot take the
    writes of that shard's sessions)."""
    if isinstance(redis, RedisCluster):
        await redis.initialize()
        await redis.ping(target_nodes=RedisCluster.PRIMARIES)
        return
    await redis.ping()


Arg = str | bytes | int


class Lua:
    """A Lua script, sent as EVALSHA and with its body only when this Redis has not seen it
    (after a restart or a flush). Made once per script, not per call: hashing the body and
    building a script object on every call was a visible cost on hot paths."""

    def __init__(self, body: str) -> None:
        self.body = body
        # SHA-1 is what Redis names scripts by, not a security measure.
        self.sha = hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, redis: Client, keys: Sequence[str], *args: Arg) -> Any:
        try:
            call = redis.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[arg-type]
            return await cast(Awaitable[Any], call)
        except NoScriptError:
            call = redis.eval(self.body, len(keys), *keys, *args)  # type: ignore[arg-type]
            return await cast(Awaitable[Any], call)


# How long a write that must outlive a failover waits for its shard's replica.
REPLICA_WAIT_MS = 100


async def run_scripts(
    redis: Client,
    calls: Sequence[tuple[Lua, Sequence[str], Sequence[Arg]]],
    *,
    replicated: bool = False,
) -> list[Any]:
    """Several script calls in one round trip (not a transaction); one reply each. A call
    that found its script missing is sent again with the body; only those are repeated.

    On a cluster the pipeline sends each shard its own calls, all shards at once (each
    call's keys are in one slot). With `replicated`, each shard's calls are followed, on
    the same connection, by WAIT for one replica: what they wrote then survives that
    shard's primary failing over (Redis replicates asynchronously; a replica promoted
    before it had a write would have lost it: stock taken twice). A replica that does not
    answer within REPLICA_WAIT_MS lets the calls through; a shard without a replica is not
    waited for (it cannot fail over anyway)."""
    if not calls:
        return []
    waits = redis if isinstance(redis, RedisCluster) and replicated else None
    if len(calls) == 1 and waits is None:  # a pipeline would only add its own overhead
        script, keys, args = calls[0]
        return [await script(redis, keys, *args)]
    if waits is not None:
        await waits.initialize()  # the slot map, once per process
    pipe = redis.pipeline(transaction=False)
    shards: dict[str, ClusterNode] = {}
    for script, keys, args in calls:
        # execute_command, not evalsha: redis-py's cluster pipeline refuses the method by
        # name, but routes the command by its keys like any other.
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        if waits is not None:
            # The slot's primary, then its replicas: WAIT only where one exists (a primary
            # whose replica took over a moment ago has none until another joins it).
            nodes = waits.nodes_manager.slots_cache.get(waits.keyslot(keys[0]), [])
            if len(nodes) > 1:
                shards[nodes[0].name] = nodes[0]
    for node in shards.values():
        pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS, target_nodes=node)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    replies = replies[: len(calls)]
    for n, reply in enumerate(replies):
        if isinstance(reply, NoScriptError):
            script, keys, args = calls[n]
            replies[n] = await script(redis, keys, *args)
        elif isinstance(reply, Exception):
            raise reply
    return replies


async def alone_if_unreachable(
    run: Callable[[list[T]], Awaitable[list[R]]], items: list[T]
) -> list[R | Exception]:
    """`run` the batch in one round trip; if Redis cannot be reached for it (on a cluster,
    one shard of the several a batch spans may be down or failing over), each item on
    its own, so that only the callers whose keys live there fail."""
    try:
        return list(await run(items))
    except UNREACHABLE:
        if len(items) == 1:
            raise
    alone = await asyncio.gather(*(run([item]) for item in items), return_exceptions=True)
    out: list[R | Exception] = []
    for got in alone:
        if isinstance(got, BaseException) and not isinstance(got, Exception):
            raise got  # cancelled: nobody is left to answer
        out.append(got if isinstance(got, Exception) else got[0])
    return out
