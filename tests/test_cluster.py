"""The whole product on a Redis Cluster: three primaries, each with a replica, started here.

Two `panen serve` processes and a worker run on the cluster (and on a queue Redis of their
own, as PANEN_QUEUE_URL requires beside a cluster). A session sells, settles and takes
gifts across both processes while viewers on each watch; then the primary that holds the
session's slot dies mid-sale, its replica takes over, and no order is lost, the stock is
never sold twice, and every viewer ends with the totals the database has.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text

from core.db import Database
from core.pubsub import Subscriber
from core.redis import close, create_redis
from core.settings import Settings
from tests.api import auth, donate_and_pay, live_listing, make_buyers, register
from tests.checks import assert_ledger_invariants, assert_log_gap_free
from tests.conftest import ROOT, Backing, process_env
from tests.live_clients import Viewer
from tests.processes import Server, ThrowawayCluster, ThrowawayRedis, Worker, running


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayCluster]:
    found = ThrowawayCluster(tmp_path_factory.mktemp("cluster"))
    with running(found):
        yield found


@pytest.fixture(scope="module")
def queue() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    with running(server):
        yield server


def cluster_env(
    settings: Settings, cluster: ThrowawayCluster, queue: ThrowawayRedis
) -> dict[str, str]:
    return {
        **process_env(settings),
        "REDIS_URL": cluster.url,
        "PANEN_QUEUE_URL": queue.url,
        "PANEN_TICKER_HZ": "10",
    }


async def sold_in_db(db: Database, listing_id: str) -> tuple[int, int]:
    """(orders, units) of a listing that hold stock, as PostgreSQL has them."""
    async with db.reader() as s:
        row = (
            await s.execute(
                text(
                    "SELECT count(*), coalesce(sum(quantity), 0) FROM orders"
                    " WHERE listing_id = :l AND status IN ('reserved', 'paid', 'settled')"
                ),
                {"l": listing_id},
            )
        ).one()
    return int(row[0]), int(row[1])


async def wait_settled(db: Database, order_ids: list[str], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        async with db.reader() as s:
            left = await s.scalar(
                text("SELECT count(*) FROM orders WHERE id = ANY(:ids) AND status <> 'settled'"),
                {"ids": order_ids},
            )
        if left == 0:
            return
        assert time.monotonic() < deadline, f"{left} orders not settled"
        await asyncio.sleep(0.3)


async def pay_and_settle(
    http: httpx.AsyncClient,
    servers: tuple[Server, Server],
    admin_token: str,
    db: Database,
    placed: list[dict[str, Any]],
) -> None:
    """Approve every order's payment, alternating processes, and wait until all settled."""
    paid = await asyncio.gather(
        *(
            http.post(
                f"{servers[n % 2].base}/api/payments/{o['payment']['id']}/sandbox/approve",
                headers=auth(admin_token),
            )
            for n, o in enumerate(placed)
        )
    )
    assert {p.status_code for p in paid} == {200}, [p.text for p in paid]
    await wait_settled(db, [o["id"] for o in placed])


def frame_totals(viewer: Viewer) -> dict[str, Any]:
    """The newest totals a viewer has: from its last ticker frame or snapshot."""
    for frame in reversed(viewer.seen):
        if frame["type"] == "ticker":
            return frame["totals"]  # type: ignore[no-any-return]
        if frame["type"] == "subscribed" and "snapshot" in frame:
            return frame["snapshot"]["totals"]  # type: ignore[no-any-return]
    return {}


async def until_totals(
    viewer: Viewer, want: dict[str, Any], within: float = 20, donated: int = 0
) -> None:
    """Wait until the viewer's newest totals carry `want` (a subset) and `donated`."""
    deadline = time.monotonic() + within
    while True:
        totals = frame_totals(viewer)
        if all(totals.get(k) == v for k, v in want.items()) and (
            totals.get("charity", {}).get("donated", 0) >= donated
        ):
            return
        left = deadline - time.monotonic()
        seen = [(f["type"], f.get("seq")) for f in viewer.seen]
        assert left > 0, f"totals {totals}, want {want} and {donated} donated; saw {seen}"
        with contextlib.suppress(TimeoutError):
            await viewer.recv(min(left, 1.0))


def keys_by_node(cluster: ThrowawayCluster, needle: str) -> dict[int, list[bytes]]:
    """Every key holding `needle`, by the primary that holds it."""
    out: dict[int, list[bytes]] = {}
    for port, proc in cluster.procs.items():
        if proc.poll() is not None:
            continue
        client = redis.Redis(port=port)
        if client.info("replication")["role"] != "master":
            continue
        found = list(client.scan_iter(match=f"*{needle}*", count=1000))
        if found:
            out[port] = found
    return out


async def test_on_a_cluster_a_session_sells_settles_and_gives_across_two_processes(
    settings: Settings,
    admin_token: str,
    db: Database,
    cluster: ThrowawayCluster,
    queue: ThrowawayRedis,
) -> None:
    env = cluster_env(settings, cluster, queue)
    a, b = Server(env), Server(env)
    with running(a, b, Worker(env)):
        async with httpx.AsyncClient(timeout=30) as http:
            ready = (await http.get(a.base + "/readyz")).json()
            assert ready["checks"]["redis"] == "ok" and ready["checks"]["queue"] == "ok", ready
            http.base_url = httpx.URL(a.base)
            world, listing = await live_listing(http, admin_token, stock=30)
            topic = f"session:{world.session['id']}"
            watchers = [await Viewer.connect(s.ws) for s in (a, b)]
            for w in watchers:
                assert (await w.subscribe(topic))["type"] == "subscribed"
            talker_actor = await register(http, "talker")
            talker = await Viewer.connect(b.ws, talker_actor.token)
            await talker.subscribe(topic)

            # Buyers on both processes, over HTTP and over the socket.
            buyers = await make_buyers(db, settings, 12)

            async def buy_http(i: int, headers: dict[str, str]) -> httpx.Response:
                return await http.post(
                    (a, b)[i % 2].base + "/api/orders",
                    headers={**headers, "Idempotency-Key": f"c-{i}"},
                    json={"listing_id": listing["id"], "quantity": 2},
                )

            answers = await asyncio.gather(*(buy_http(i, h) for i, h in enumerate(buyers[:10])))
            assert Counter(r.status_code for r in answers) == {201: 10}, [r.text for r in answers]
            placed = [r.json()["order"] for r in answers]
            socket_buyer = await Viewer.connect(a.ws, buyers[10]["Authorization"].split()[1])
            await socket_buyer.send(
                {
                    "type": "order",
                    "id": "s1",
                    "listing_id": listing["id"],
                    "quantity": 3,
                    "idempotency_key": "sock-1",
                }
            )
            ack = await socket_buyer.expect(lambda f: f.get("id") == "s1")
            assert ack["type"] == "ack", ack
            placed.append(ack["order"])
            # 23 of 30 sold: 8 more would oversell, 7 fit exactly
            r = await http.post(
                b.base + "/api/orders",
                headers={**buyers[11], "Idempotency-Key": "over"},
                json={"listing_id": listing["id"], "quantity": 8},
            )
            assert r.status_code == 409 and r.json()["error"]["code"] == "sold_out", r.text
            r = await http.post(
                b.base + "/api/orders",
                headers={**buyers[11], "Idempotency-Key": "last"},
                json={"listing_id": listing["id"], "quantity": 7},
            )
            assert r.status_code == 201, r.text
            placed.append(r.json()["order"])

            # Every payment settles through the worker on the queue Redis.
            await pay_and_settle(http, (a, b), admin_token, db, placed)

            # A gift, and the chat, across processes.
            donor = await register(http, "donor")
            await donate_and_pay(http, donor, world, 250_000)
            await talker.send({"type": "chat", "id": "hi", "topic": topic, "text": "halo"})
            assert (await talker.expect(lambda f: f.get("id") == "hi"))["type"] == "ack"
            for w in watchers:
                line = await w.expect(lambda f: f["type"] == "chat")
                assert line["message"]["text"] == "halo"

            orders, units = await sold_in_db(db, listing["id"])
            assert units == 30
            for w in watchers:
                want = {"orders": orders, "units_sold": {listing["id"]: units}}
                await until_totals(w, want, donated=250_000)
            for v in (*watchers, talker, socket_buyer):
                await v.close()

    # Everything of the session lives on the one shard of its slot.
    assert len(keys_by_node(cluster, world.session["id"])) == 1
    await assert_ledger_invariants(db)
    await assert_log_gap_free(db)


async def test_a_primary_failing_over_mid_sale_loses_no_order_and_heals_every_viewer(
    settings: Settings,
    admin_token: str,
    db: Database,
    cluster: ThrowawayCluster,
    queue: ThrowawayRedis,
) -> None:
    env = cluster_env(settings, cluster, queue)
    a, b = Server(env), Server(env)
    stock = 60
    with running(a, b, Worker(env)):
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as http:
            http.base_url = httpx.URL(a.base)
            world, listing = await live_listing(http, admin_token, stock=stock)
            sid = world.session["id"]
            topic = f"session:{sid}"
            watchers = [await Viewer.connect(s.ws) for s in (a, b)]
            for w in watchers:
                await w.subscribe(topic)
            buyers = await make_buyers(db, settings, 90)
            primary = cluster.primary_of(f"{{{sid}}}")

            async def buy(i: int, headers: dict[str, str]) -> httpx.Response:
                """Retry with the same key until the answer is final: 201 or 409."""
                deadline = time.monotonic() + 60
                while True:
                    try:
                        r = await http.post(
                            (a, b)[i % 2].base + "/api/orders",
                            headers={**headers, "Idempotency-Key": f"f-{i}"},
                            json={"listing_id": listing["id"], "quantity": 1},
                        )
                    except httpx.TransportError:
                        r = None
                    if r is not None and r.status_code in (201, 409):
                        return r
                    assert r is None or r.status_code == 503, r.text  # never a 500
                    assert time.monotonic() < deadline, r.text if r else "no answer"
                    await asyncio.sleep(0.2)

            async def buyers_trickle() -> list[httpx.Response]:
                out = []
                for start in range(0, len(buyers), 10):
                    out += await asyncio.gather(
                        *(buy(i, buyers[i]) for i in range(start, min(start + 10, len(buyers))))
                    )
                    await asyncio.sleep(0.15)
                return out

            async def fail_over() -> int:
                await asyncio.sleep(0.6)  # mid-sale
                return await asyncio.to_thread(cluster.fail_over, primary)

            answers, promoted = await asyncio.gather(buyers_trickle(), fail_over())
            assert promoted != primary
            codes = Counter(r.status_code for r in answers)
            assert codes == {201: stock, 409: len(buyers) - stock}, codes

            # No order lost, none twice: each accepted answer is one row, and the rows are
            # exactly the stock.
            accepted = {r.json()["order"]["id"] for r in answers if r.status_code == 201}
            orders, units = await sold_in_db(db, listing["id"])
            assert (orders, units) == (stock, stock) and len(accepted) == stock

            # Every viewer heals onto the new primary and ends with the database's totals.
            # Each accepted order is paid and settles (the room counts paid orders).
            placed = [r.json()["order"] for r in answers if r.status_code == 201]
            await pay_and_settle(http, (a, b), admin_token, db, placed)
            for w in watchers:
                await until_totals(
                    w, {"orders": stock, "units_sold": {listing["id"]: stock}}, within=30
                )
            # and the room is live again across both processes
            talker_actor = await register(http, "after")
            talker = await Viewer.connect(a.ws, talker_actor.token)
            await talker.subscribe(topic)
            deadline = time.monotonic() + 15
            while True:
                await talker.send({"type": "chat", "id": "again", "topic": topic, "text": "lagi"})
                reply = await talker.expect(lambda f: f.get("id") == "again")
                if reply["type"] == "ack" or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.3)
            assert reply["type"] == "ack", reply
            line = await watchers[1].expect(lambda f: f["type"] == "chat", within=10)
            assert line["message"]["text"] == "lagi"
            ready = await http.get(b.base + "/readyz")
            assert ready.status_code == 200, ready.text
            for v in (*watchers, talker):
                await v.close()
    await assert_ledger_invariants(db)


async def test_sharded_subscriptions_follow_their_slots_through_a_failover(
    tmp_path: Path,
) -> None:
    """Channels spread over every shard, several on each: all are received; when one
    primary dies, only its channels are reported lost, they come back on the replica that
    took over, and every channel receives again."""
    cluster = ThrowawayCluster(tmp_path / "own")
    cluster.start()
    got: dict[bytes, list[bytes]] = {}
    lost: list[bytes] = []
    back: list[bytes] = []
    confirmed: set[bytes] = set()
    client = create_redis(cluster.url)
    subscriber = Subscriber(
        client,
        lambda channel, data: got.setdefault(channel, []).append(data),
        confirmed.add,
        lost.extend,
        back.extend,
    )
    channels = [f"t:ch:session:{{ses_{n}}}".encode() for n in range(24)]
    publisher = redis.RedisCluster(host="127.0.0.1", port=cluster.ports[0])

    async def until(check: Any, what: str, within: float = 20) -> None:
        deadline = time.monotonic() + within
        while not check():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.05)

    def publish_all(tag: bytes) -> None:
        for channel in channels:
            publisher.execute_command("SPUBLISH", channel, tag, target_nodes=None)

    try:
        for channel in channels:
            await subscriber.subscribe(channel)
        await until(lambda: confirmed >= set(channels), "every channel confirmed")
        by_shard = Counter(cluster.primary_of(c.decode()) for c in channels)
        assert len(by_shard) == 3 and min(by_shard.values()) >= 2, by_shard
        await asyncio.to_thread(publish_all, b"before")
        await until(lambda: all(got.get(c) == [b"before"] for c in channels), "all received")

        dying = cluster.primary_of(channels[0].decode())
        on_it = {c for c in channels if cluster.primary_of(c.decode()) == dying}
        confirmed.clear()
        await asyncio.to_thread(cluster.fail_over, dying)
        await until(lambda: set(back) >= on_it, "the lost channels back", within=30)
        assert set(lost) == on_it  # the other shards' channels never stopped
        # `back` says SSUBSCRIBE went to the new primary; what is published before it
        # confirms is not delivered (a room heals that from history).
        await until(lambda: confirmed >= on_it, "the lost channels confirmed again", within=30)
        survivor = next(port for port, p in cluster.procs.items() if p.poll() is None)
        publisher = redis.RedisCluster(host="127.0.0.1", port=survivor)
        await asyncio.to_thread(publish_all, b"after")
        await until(lambda: all(got[c][-1] == b"after" for c in channels), "all received again")
        assert subscriber.moves == len(on_it)
    finally:
        await subscriber.stop()
        await close(client)
        cluster.stop()


CLUSTER_VARIANTS = (
    "tests/test_live_rooms.py",
    "tests/test_orders.py",
    "tests/test_settlement.py",
    "tests/test_donations.py",
)


def test_the_integration_tests_of_rooms_orders_settlement_and_donations_pass_on_a_cluster(
    backing: Backing, cluster: ThrowawayCluster, queue: ThrowawayRedis
) -> None:
    """The same tests that run on one Redis, run again with a cluster as their Redis (real
    `panen serve` processes and workers among them), in a pytest of their own."""
    env = {
        **os.environ,
        "PANEN_TEST_DATABASE_URL": backing.db_server_url,
        "PANEN_TEST_REDIS_URL": cluster.url,
        "PANEN_TEST_QUEUE_URL": queue.url,
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *CLUSTER_VARIANTS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout, run.stdout[-2000:]


async def test_a_primary_of_other_sessions_failing_over_leaves_this_session_selling(
    settings: Settings,
    admin_token: str,
    db: Database,
    tmp_path: Path,
    queue: ThrowawayRedis,
) -> None:
    """Killing a primary that does not hold the session: its orders go on being accepted
    all through the failover (none waits for it, none answers 503), and its viewers' frames
    keep coming."""
    cluster = ThrowawayCluster(tmp_path / "other")
    cluster.start()
    env = cluster_env(settings, cluster, queue)
    a = Server(env)
    try:
        with running(a):
            async with httpx.AsyncClient(timeout=30, base_url=a.base) as http:
                world, listing = await live_listing(http, admin_token, stock=5000)
                sid = world.session["id"]
                mine = cluster.primary_of(f"{{{sid}}}")
                # Slot 0's primary if it can be: redis-py's default node, which it asks
                # things of when it reads the slot map again.
                by_slot = sorted(redis.Redis(port=mine).cluster("SLOTS"))
                other = next(int(r[2][1]) for r in by_slot if int(r[2][1]) != mine)
                watcher = await Viewer.connect(a.ws)
                await watcher.subscribe(f"session:{sid}")
                buyers = await make_buyers(db, settings, 40)
                codes: Counter[int] = Counter()
                stop = asyncio.Event()

                async def keep_buying(n: int, headers: dict[str, str]) -> None:
                    i = 0
                    while not stop.is_set():
                        i += 1
                        r = await http.post(
                            "/api/orders",
                            headers={**headers, "Idempotency-Key": f"k{n}-{i}"},
                            json={"listing_id": listing["id"], "quantity": 1},
                        )
                        codes[r.status_code] += 1
                        await asyncio.sleep(0.05)

                async def keep_probing() -> None:
                    # /readyz pings every primary: a request that meets the dead one
                    while not stop.is_set():
                        await http.get("/readyz")
                        await asyncio.sleep(0.1)

                buying = [asyncio.create_task(keep_buying(n, h)) for n, h in enumerate(buyers[:8])]
                buying.append(asyncio.create_task(keep_probing()))
                await asyncio.sleep(0.5)
                frames_before = len(watcher.seen)
                await asyncio.to_thread(cluster.fail_over, other)
                await asyncio.sleep(0.5)
                stop.set()
                await asyncio.gather(*buying)
                assert set(codes) == {201}, codes  # not one 503 (or 500) in the session
                await watcher.expect(lambda f: f["type"] == "ticker")
                assert len(watcher.seen) > frames_before
                await watcher.close()
    finally:
        cluster.stop()
