"""Sessions spread over Redis Cluster shards: flash sales and room fan-out on one Redis, on a
cluster of 1 primary and on a cluster of 3 primaries (each primary with its replica), in one
run, so the single instance is the baseline every row is read against.

    .venv/bin/python bench/shards.py [--sessions 8] [--buyers 4000] [--viewers 2000]
        [--rate 400] [--seconds 8] [--backends single,cluster-1,cluster-3]

Flash sale: `--sessions` live sessions with one listing each; `--buyers` buyers (spread
evenly over the sessions) each tap "buy" twice with one idempotency key, 256 requests in
flight, through the real `commerce.orders.place` in this process; half the units exist.
On a cluster each reservation also waits for its shard's replica (WAIT), as deployed.

Fan-out: two `panen serve` processes, `--viewers` sockets spread over the sessions' rooms
(and over both processes), `--rate` events per second spread over the rooms; frames/s and
the staleness of the newest event a sampled viewer receives (p50/p99).

Every backend is started here, on loopback ports, and stopped after. On this 2-core machine
the shards share the same two cores as everything else: the numbers say what a cluster
costs per operation (routing, WAIT, one pub/sub connection per shard), not how it scales
across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import (  # noqa: E402
    Proc,
    WsClient,
    free_port,
    on_panen,
    sale_event,
    start_server,
)
from bench.flash_sale import (  # noqa: E402
    add_listing,
    fresh_deployment,
    make_buyers,
    pct,
    run_stampede,
    seed_session,
    sold,
)
from commerce.orders.service import place  # noqa: E402
from core.auth import Principal  # noqa: E402
from core.errors import ApiError  # noqa: E402
from core.events import publish_many  # noqa: E402
from core.services import Services  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests.processes import ThrowawayCluster, ThrowawayRedis, running  # noqa: E402

INFLIGHT = 256


@contextmanager
def backend(name: str, home: Path) -> Iterator[tuple[str, str]]:
    """(REDIS_URL, PANEN_QUEUE_URL) of a backend started for this run."""
    queue = ThrowawayRedis()
    store: ThrowawayRedis | ThrowawayCluster
    if name == "single":
        store = ThrowawayRedis()
    else:
        store = ThrowawayCluster(home / name, primaries=int(name.split("-")[1]))
    with running(queue, store):
        yield store.url, queue.url


async def flash(settings: Settings, sessions: int, buyers_n: int) -> dict[str, Any]:
    services = await Services.start(settings, pool_size=20, jobs=False)
    try:
        db = services.db
        per = buyers_n // sessions
        listings = []
        for _ in range(sessions):
            world = await seed_session(db)
            listings.append(await add_listing(db, world, per // 2))
        buyers = await make_buyers(db, per * sessions)
        where = {b: listings[i % sessions] for i, b in enumerate(buyers)}

        async def attempt(buyer: str, key: str) -> bool:
            try:
                await place(services, Principal(buyer, frozenset({"viewer"})), where[buyer], 1, key)
                return True
            except ApiError as err:
                assert err.code == "sold_out", err
                return False

        _, to_last, lat, accepted = await run_stampede(buyers, INFLIGHT, attempt, "shards")
        in_db = sum([await sold(db, listing) for listing in listings])
        stock = (per // 2) * sessions
        assert accepted == in_db == stock, (accepted, in_db, stock)
        return {
            "accepted_s": accepted / to_last,
            "p50": statistics.median(lat),
            "p99": pct(lat, 0.99),
            "oversold": max(0, in_db - stock),
        }
    finally:
        await services.close()


async def fanout(
    settings: Settings, queue_url: str, sessions: int, viewers: int, rate: int, seconds: float
) -> dict[str, Any]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "PANEN_QUEUE_URL": queue_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "PANEN_ENV": "development",
        "PANEN_SOCKETS_PER_ADDRESS": "0",
        "PANEN_SECRET_KEY": settings.secret_key,
        "PANEN_LOG_LEVEL": "WARNING",
    }
    services = await Services.start(settings, pool_size=2, jobs=False)
    servers: list[Proc] = []
    clients: list[WsClient] = []
    try:
        topics = []
        for _ in range(sessions):
            world = await seed_session(services.db)
            topics.append(f"session:{world['session']}")
        for _ in range(2):
            port = free_port()
            servers.append(
                start_server(
                    [sys.executable, "-m", "panen", "serve", "--port", str(port)], env, port
                )
            )
        loop = asyncio.get_running_loop()

        async def one(i: int) -> None:
            server = servers[i % 2]
            _, client = await loop.create_connection(
                lambda: WsClient("/ws", f"127.0.0.1:{server.port}", on_panen),
                "127.0.0.1",
                server.port,
            )
            await client.upgraded
            client.sampled = i % 20 == 0
            topic = topics[(i // 2) % sessions]
            client.send_text(orjson.dumps({"type": "subscribe", "topic": topic}).decode())
            clients.append(client)

        for start in range(0, viewers, 200):
            await asyncio.gather(*(one(i) for i in range(start, min(viewers, start + 200))))
        await asyncio.sleep(2.0)
        frames_before = sum(c.frames for c in clients)
        started = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) + 1
            batch = []
            while sent < due:
                sent += 1
                topic = topics[sent % sessions]
                batch.append((topic, sale_event(f"o{sent}", topic.split(":")[1])))
            if batch:
                await publish_many(services, batch)
            await asyncio.sleep(0.01)
        window = time.monotonic() - started
        await asyncio.sleep(0.5)
        frames = sum(c.frames for c in clients) - frames_before
        stale = sorted(x for c in clients for x in c.stale)
        return {
            "frames_s": frames / (window + 0.5),
            "f_p50": statistics.median(stale) if stale else float("nan"),
            "f_p99": stale[int(len(stale) * 0.99) - 1] if stale else float("nan"),
            "disconnects": sum(c.closed for c in clients),
        }
    finally:
        for c in clients:
            if c.transport is not None:
                c.transport.close()
        for s in servers:
            s.stop()
        await services.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--buyers", type=int, default=4000)
    p.add_argument("--viewers", type=int, default=2000)
    p.add_argument("--rate", type=int, default=400)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--backends", default="single,cluster-1,cluster-3")
    a = p.parse_args()
    print(
        f"{a.sessions} sessions; flash sale: {a.buyers:,} buyers (each twice), "
        f"{INFLIGHT} in flight; fan-out: {a.viewers:,} viewers on 2 processes, "
        f"{a.rate} events/s over the rooms for {a.seconds:.0f} s\n"
    )
    print(
        "| Redis | orders accepted/s | vs one Redis | order p50 ms | order p99 ms | oversold "
        "| frames/s | staleness p50 ms | staleness p99 ms | disconnects |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.backends.split(","):
            with (
                backend(name, Path(tmp)) as (redis_url, queue_url),
                fresh_deployment(a.server, redis_url, "shards", queue_url=queue_url) as s,
            ):
                f = asyncio.run(flash(s, a.sessions, a.buyers))
                o = asyncio.run(fanout(s, queue_url, a.sessions, a.viewers, a.rate, a.seconds))
            base = base or f["accepted_s"]
            print(
                f"| {name} | {f['accepted_s']:,.0f} | {f['accepted_s'] / base:.2f}x "
                f"| {f['p50']:.1f} | {f['p99']:.1f} | {f['oversold']} | {o['frames_s']:,.0f} "
                f"| {o['f_p50']:.0f} | {o['f_p99']:.0f} | {o['disconnects']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
