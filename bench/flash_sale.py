"""Flash sale: N buyers tap "buy" at once for stock S; Redis reservation vs SELECT … FOR UPDATE.

Both paths run in this one process against the same PostgreSQL (a fresh database,
migrated to head) with the same connection pool and the same number of requests in
flight; both write the same order, payment and status rows for each accepted order. The
Redis path is the real `commerce.orders.place` (Lua reserve, then one INSERT statement);
the baseline is the obvious design: one transaction that locks the listing's stock row
FOR UPDATE, checks idempotency and stock, decrements and inserts.

    .venv/bin/python bench/flash_sale.py [--buyers 1000,5000] [--inflight 256]
        [--paths baseline,redis,http] [--rounds 1]

The `http` path (not run by default) sends the same stampede through two real
`panen serve` processes, each buyer's two copies to different servers, from a keep-alive
client in this process: what a deployment on this machine accepts end to end, with the
load generator sharing the cores. The `socket` path sends it as `order` frames over the
WebSocket: each buyer holds a signed-in socket on each server (opened before the clock
starts, as a viewer in the room already has one) and sends one copy on each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text

from commerce.catalog.models import Farmer, Product
from commerce.charities.models import Charity
from commerce.orders.pricing import split
from commerce.orders.service import place
from commerce.sessions.models import Listing, LiveSession
from core import heap
from core.auth import Principal, Tokens
from core.clock import utcnow
from core.db import Database
from core.errors import ApiError
from core.ids import new_id
from core.models import User
from core.services import Services
from core.settings import Settings
from panen.embedded import drop_database, ensure_database
from panen.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import WsClient  # noqa: E402

POOL = 20


async def seed_session(db: Database) -> dict[str, str]:
    """A live session of one farmer's product, selling for one charity."""
    ids = {k: new_id(k[:3]) for k in ("user", "farmer", "product", "charity", "session")}
    async with db.transaction() as s:
        s.add(
            User(
                id=ids["user"],
                handle=f"h{secrets.token_hex(5)}",
                display_name="Bench",
                password_hash="x",
                roles=["host", "farmer", "charity_admin"],
            )
        )
        await s.flush()
        s.add(Farmer(id=ids["farmer"], user_id=ids["user"], name="Kebun", region="Garut"))
        s.add(Charity(id=ids["charity"], name="Pelita", description="-", admin_user_id=ids["user"]))
        await s.flush()
        s.add(
            Product(
                id=ids["product"],
                farmer_id=ids["farmer"],
                name="Kopi",
                unit="250 g",
                unit_price=95_000,
                currency="IDR",
            )
        )
        s.add(
            LiveSession(
                id=ids["session"],
                host_id=ids["user"],
                title="Bench",
                charity_id=ids["charity"],
                currency="IDR",
                status="live",
                started_at=utcnow(),
            )
        )
    return ids


async def add_listing(db: Database, world: dict[str, str], stock: int) -> str:
    listing_id = new_id("lst")
    async with db.transaction() as s:
        # One product per listing keeps (session, product) unique.
        product_id = new_id("prd")
        s.add(
            Product(
                id=product_id,
                farmer_id=world["farmer"],
                name="Kopi",
                unit="250 g",
                unit_price=95_000,
                currency="IDR",
            )
        )
        await s.flush()
        s.add(
            Listing(
                id=listing_id,
                session_id=world["session"],
                product_id=product_id,
                price=95_000,
                stock=stock,
                pledge_bps=1000,
                pledge_per_unit=0,
            )
        )
    return listing_id


async def make_buyers(db: Database, n: int) -> list[str]:
    ids = [new_id("usr") for _ in range(n)]
    async with db.transaction() as s:
        await s.execute(
            text(
                "INSERT INTO users (id, handle, display_name, password_hash, roles)"
                " VALUES (:id, :h, :h, 'x', ARRAY['viewer'])"
            ),
            [{"id": i, "h": f"b{secrets.token_hex(6)}"} for i in ids],
        )
        await s.execute(
            text(
                "INSERT INTO addresses (id, user_id, recipient, phone, street, district, city,"
                " province, postal_code, zone, is_default)"
                " VALUES (:a, :id, 'Budi', '+6281234567890', 'Jl. Merdeka 1', 'Coblong',"
                " 'Kota Bandung', 'Jawa Barat', '40131', 'jawa', true)"
            ),
            [{"a": new_id("adr"), "id": i} for i in ids],
        )
    return ids


BASELINE_INSERT = text(
    """
WITH o AS (
  INSERT INTO orders (id, session_id, listing_id, inventory_id, buyer_id, farmer_id, charity_id,
                      idempotency_key, quantity, unit_price, total, pledge_amount, fee_amount,
                      farmer_amount, currency, status, expires_at)
  VALUES (:id, :session_id, :listing_id, :listing_id, :buyer_id, :farmer_id, :charity_id, :key,
          1, :price, :price, :pledge, :fee, :farmer, 'IDR', 'reserved', :expires_at)
  RETURNING id
), p AS (
  INSERT INTO payments (id, purpose, order_id, payer_id, provider, status, amount, currency)
  SELECT :payment_id, 'order', o.id, :buyer_id, 'sandbox', 'pending', :price, 'IDR' FROM o
)
INSERT INTO order_status_history (order_id, status) SELECT o.id, 'reserved' FROM o
"""
)


async def baseline_place(
    db: Database, world: dict[str, str], listing_id: str, buyer: str, key: str, fee_bps: int
) -> bool:
    """The obvious route: lock the stock row, check, decrement, insert; one transaction."""
    async with db.transaction() as s:
        row = (
            await s.execute(
                text(
                    "SELECT l.stock, l.price, l.pledge_bps, s.status FROM listings l"
                    " JOIN sessions s ON s.id = l.session_id WHERE l.id = :l FOR UPDATE OF l"
                ),
                {"l": listing_id},
            )
        ).one()
        # Under the row lock, so a duplicate send waits for the first and then finds it.
        if await s.scalar(
            text("SELECT id FROM orders WHERE buyer_id = :b AND idempotency_key = :k"),
            {"b": buyer, "k": key},
        ):
            return True
        if row.status != "live" or row.stock < 1:
            return False
        await s.execute(
            text("UPDATE listings SET stock = stock - 1 WHERE id = :l"), {"l": listing_id}
        )
        parts = split(row.price, 1, row.pledge_bps, 0, fee_bps)
        await s.execute(
            BASELINE_INSERT,
            {
                "id": new_id("ord"),
                "session_id": world["session"],
                "listing_id": listing_id,
                "buyer_id": buyer,
                "farmer_id": world["farmer"],
                "charity_id": world["charity"],
                "key": key,
                "price": row.price,
                "pledge": parts.pledge,
                "fee": parts.fee,
                "farmer": parts.farmer,
                "expires_at": utcnow() + timedelta(minutes=10),
                "payment_id": new_id("pay"),
            },
        )
        return True


async def run_stampede(
    buyers: list[str], inflight: int, attempt: Any, tag: str
) -> tuple[float, float, list[float], int]:
    """Every buyer sends twice with one key. Returns (wall s, time to last accept s,
    latencies ms, accepted keys)."""
    gate = asyncio.Semaphore(inflight)
    latencies: list[float] = []
    accepted: set[int] = set()
    last_accept = 0.0
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal last_accept
        async with gate:
            t = time.perf_counter()
            ok = await attempt(buyers[i], f"{tag}-{i}")
            done = time.perf_counter()
        latencies.append((done - t) * 1000)
        if ok:
            accepted.add(i)
            last_accept = max(last_accept, done - t0)

    await asyncio.gather(*(one(i) for i in range(len(buyers)) for _ in (0, 1)))
    return time.perf_counter() - t0, last_accept, latencies, len(accepted)


async def sold(db: Database, listing_id: str) -> int:
    async with db.reader() as s:
        n = await s.scalar(
            text(
                "SELECT coalesce(sum(quantity), 0) FROM orders WHERE listing_id = :l"
                " AND status IN ('reserved','paid','settled')"
            ),
            {"l": listing_id},
        )
    return int(n or 0)


class Socket:
    """One buyer's signed-in WebSocket to one server, on `bench/fanout.py`'s minimal client:
    the websockets library's client spent more of the shared cores per order frame than the
    servers' own socket path. `order` sends a frame and waits for the answer with its id."""

    client: WsClient  # set once connected

    def __init__(self) -> None:
        self.n = 0
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def on_text(self, payload: bytes) -> None:
        reply = orjson.loads(payload)
        waiter = self.waiting.pop(reply.get("id"), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    async def send(self, frame: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        frame_id = frame["id"] = f"f{self.n}"
        waiter = self.waiting[frame_id] = asyncio.get_running_loop().create_future()
        self.client.send_text(orjson.dumps(frame).decode())
        return await waiter

    async def order(self, listing: str, key: str) -> dict[str, Any]:
        frame = {"type": "order", "listing_id": listing, "quantity": 1, "idempotency_key": key}
        return await self.send(frame)

    async def close(self) -> None:
        if self.client.transport is not None:
            self.client.transport.close()


async def signed_in(bases: list[str], buyers: list[str], tokens: Tokens) -> dict[str, list[Socket]]:
    """A signed-in socket per buyer on every server, opened 200 at a time."""
    out: dict[str, list[Socket]] = {}
    loop = asyncio.get_running_loop()

    async def one(buyer: str, base: str) -> Socket:
        host, port = base.removeprefix("http://").split(":")
        sock = Socket()
        _, sock.client = await loop.create_connection(
            lambda: WsClient("/ws", base[7:], lambda _, data: sock.on_text(data)), host, int(port)
        )
        await sock.client.upgraded
        welcome = await sock.send({"type": "hello", "token": tokens.issue(buyer, ["viewer"])})
        assert welcome["type"] == "welcome", welcome
        return sock

    for start in range(0, len(buyers), 200):
        chunk = buyers[start : start + 200]
        made = await asyncio.gather(*(one(b, base) for b in chunk for base in bases))
        for n, b in enumerate(chunk):
            out[b] = made[n * len(bases) : (n + 1) * len(bases)]
    return out


class KeepAlive:
    """A minimal HTTP/1.1 client over kept-alive connections (up to `size` per server).

    httpx's pool scans every connection on each request; with hundreds in flight the load
    generator, not the servers, set the pace (it spent 80% of its time there)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.idle: dict[str, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}
        self.gates: dict[str, asyncio.Semaphore] = {}

    async def warm(self, bases: list[str]) -> None:
        """Open every connection before the clock starts, as the sockets are: in front of
        the servers a proxy holds its kept-alive connections to them; buyers do not each
        open one to a server as they tap."""
        for base in bases:
            opened = [await self._open(base) for _ in range(self.size)]
            self.idle.setdefault(base, []).extend(opened)

    async def _open(self, base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = base.removeprefix("http://").split(":")
        return await asyncio.open_connection(host, int(port))

    async def post(
        self, base: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        gate = self.gates.setdefault(base, asyncio.Semaphore(self.size))
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {base[7:]}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode()
            + body
        )
        async with gate:
            pool = self.idle.setdefault(base, [])
            reused = bool(pool)
            reader, writer = pool.pop() if reused else await self._open(base)
            try:
                writer.write(request)
                raw = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                if not reused:
                    raise
                # The server closed a connection idle past its keep-alive before reading
                # this request: as any client does, send it again on a new one (the
                # Idempotency-Key makes that safe whatever happened).
                reader, writer = await self._open(base)
                writer.write(request)
                raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = next(
                int(line.split(":", 1)[1])
                for line in lines
                if line.lower().startswith("content-length:")
            )
            data = await reader.readexactly(length)
            pool.append((reader, writer))
            return status, data

    async def close(self) -> None:
        for pool in self.idle.values():
            for _, writer in pool:
                writer.close()


@contextmanager
def web_servers(settings: Settings, n: int) -> Iterator[tuple[list[str], list[int]]]:
    """n `panen serve` processes on this run's database and Redis prefix: their base URLs
    and process ids."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "PANEN_ENV": "development",
        "PANEN_SOCKETS_PER_ADDRESS": "0",
        "PANEN_LOGINS_PER_ADDRESS": "0",
        "PANEN_REGISTRATIONS_PER_ADDRESS": "0",
        "PANEN_SECRET_KEY": settings.secret_key,
        "PANEN_LOG_LEVEL": "WARNING",
    }
    with local_servers(lambda port: ["-m", "panen", "serve", "--port", str(port)], env, n) as up:
        yield up


@contextmanager
def local_servers(
    args: Callable[[int], list[str]], env: dict[str, str], n: int
) -> Iterator[tuple[list[str], list[int]]]:
    """n processes of `python <args(port)>` on free loopback ports, once each accepts
    connections (uvicorn listens only after its app started): base URLs and pids."""
    procs: list[subprocess.Popen[bytes]] = []
    ports = []
    try:
        for _ in range(n):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                ports.append(sock.getsockname()[1])
            procs.append(subprocess.Popen([sys.executable, *args(ports[-1])], env=env))
        for port in ports:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
        yield [f"http://127.0.0.1:{port}" for port in ports], [p.pid for p in procs]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(15)


def cpu_s(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user and system) each process has used so far."""
    used = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:  # ended meanwhile
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def postgres_pids() -> list[int]:
    """PostgreSQL's processes: its backends come and go with the pools' connections."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/comm") as f:
                    if f.read().startswith("postgres"):
                        pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def cpu_since(before: dict[int, float], pids: list[int]) -> float:
    """CPU seconds used since `before` by these processes; one started since counts in
    full, one that ended since is lost."""
    return sum(used - before.get(pid, 0.0) for pid, used in cpu_s(pids).items())


async def quiet(pids: list[int], timeout_s: float = 10.0) -> None:
    """Wait (at most `timeout_s`) until PostgreSQL and these processes together use under
    a tenth of a core: the sockets a path closed leave the servers and PostgreSQL work
    (watch time, presence) that would otherwise slow the path after it."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        watched = pids + postgres_pids()
        before = cpu_s(watched)
        await asyncio.sleep(0.5)
        if cpu_since(before, watched) < 0.05:
            break
    print(f"# quiet after {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def summarise(rates: dict[tuple[int, str], list[float]], paths: list[str], rounds: int) -> None:
    """Medians over the rounds, and each path against the in-process one of its own round
    (the machine's pace drifts between rounds more than between neighbouring paths)."""
    print(f"\nMedians of {rounds} rounds (paths alternate within each round):\n")
    print("| path | buyers | accepted/s (median) | min–max | vs in-process (median) |")
    print("|---|---:|---:|---:|---:|")
    for n in sorted({n for n, _ in rates}):
        base = rates.get((n, "redis"))
        for path in paths:
            got = rates[(n, path)]
            ratio = (
                f"{statistics.median(g / b for g, b in zip(got, base, strict=True)):.2f}x"
                if base
                else "-"
            )
            print(
                f"| {path} | {n:,} | {statistics.median(got):,.0f} "
                f"| {min(got):,.0f}–{max(got):,.0f} | {ratio} |"
            )


async def bench(
    settings: Settings, sizes: list[int], inflight: int, paths: list[str], rounds: int = 1
) -> None:
    services = await Services.start(settings, pool_size=POOL, jobs=False)
    db = services.db
    world = await seed_session(db)
    tokens = Tokens(settings.secret_key, 3600)
    stack = ExitStack()
    served = {"http", "socket"} & set(paths)
    bases, server_pids = stack.enter_context(web_servers(settings, 2)) if served else ([], [])
    http = KeepAlive(inflight)
    if "http" in paths:
        await http.warm(bases)
    # The in-process path gets the collector settings a web process runs with; the load
    # generator of the other paths gains the same.
    heap.settle()
    print(
        f"{inflight} requests in flight; every buyer sends its order twice with one "
        f"idempotency key; DB pool {POOL}\n"
    )
    print(
        "| path | buyers | stock | accepted | oversold | accepted/s | answers/s | p50 ms | p99 ms "
        "| app CPU ms/answer | PostgreSQL CPU ms/answer | load generator CPU ms/answer |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rates: dict[tuple[int, str], list[float]] = {}
    try:
        for n, r in ((n, r) for n in sizes for r in range(rounds)):
            stock = n // 2
            # New buyers each round: a server that knew them from the last would skip the
            # identity reads a stampede of new buyers costs.
            buyers = await make_buyers(db, n)
            for path in paths:
                listing = await add_listing(db, world, stock)
                if path == "http":
                    auth = {b: f"Bearer {tokens.issue(b, ['viewer'])}" for b in buyers}
                    sends: dict[str, int] = {}

                    async def attempt(
                        buyer: str,
                        key: str,
                        listing: str = listing,
                        auth: dict[str, str] = auth,
                        sends: dict[str, int] = sends,
                    ) -> bool:
                        copy = sends[key] = sends.get(key, -1) + 1
                        status, data = await http.post(
                            bases[(hash(key) + copy) % len(bases)],
                            "/api/orders",
                            {"Authorization": auth[buyer], "Idempotency-Key": key},
                            b'{"listing_id": "%s", "quantity": 1}' % listing.encode(),
                        )
                        if status in (200, 201):
                            return True
                        assert orjson.loads(data)["error"]["code"] == "sold_out", data
                        return False

                elif path == "socket":
                    sockets = await signed_in(bases, buyers, tokens)
                    sends = {}

                    async def attempt(
                        buyer: str,
                        key: str,
                        listing: str = listing,
                        sockets: dict[str, list[Socket]] = sockets,
                        sends: dict[str, int] = sends,
                    ) -> bool:
                        copy = sends[key] = sends.get(key, -1) + 1
                        reply = await sockets[buyer][copy % len(bases)].order(listing, key)
                        if reply["type"] == "ack":
                            return True
                        assert reply.get("code") == "sold_out", reply
                        return False

                elif path == "redis":

                    async def attempt(buyer: str, key: str, listing: str = listing) -> bool:
                        try:
                            await place(
                                services, Principal(buyer, frozenset({"viewer"})), listing, 1, key
                            )
                            return True
                        except ApiError as err:
                            assert err.code == "sold_out", err
                            return False

                else:

                    async def attempt(buyer: str, key: str, listing: str = listing) -> bool:
                        return await baseline_place(
                            db, world, listing, buyer, key, settings.platform_fee_bps
                        )

                # PostgreSQL's statistics as autovacuum would keep them on a live system
                # (it runs once a minute; a round takes seconds). A connection plans its
                # prepared statements from them once; with a table still counted as empty
                # the order insert's box check scanned every order, round after round.
                async with db.statement() as conn:
                    await conn.execute(text("ANALYZE orders, users, addresses"))
                await quiet(server_pids)
                # The app's CPU: the two servers', or this process's for the paths run in it.
                app = server_pids if path in served else [os.getpid()]
                app0, pg0 = cpu_s(app), cpu_s(postgres_pids())
                gen0 = time.process_time()
                print(f"# {path}: the clock starts", file=sys.stderr, flush=True)
                wall, to_last, lat, accepted = await run_stampede(
                    buyers, inflight, attempt, f"{path}{r}"
                )
                cpu, pg_cpu = cpu_since(app0, app), cpu_since(pg0, postgres_pids())
                # The clients sending the load share the cores with the servers; for the
                # paths run in this process, they are the app.
                gen = (
                    f"{1000 * (time.process_time() - gen0) / (2 * n):.2f}"
                    if path in served
                    else "–"
                )
                if path == "socket":
                    await asyncio.gather(*(s.close() for ss in sockets.values() for s in ss))
                in_db = await sold(db, listing)
                oversold = max(0, in_db - stock)
                print(
                    f"| {path} | {n:,} | {stock:,} | {accepted:,} | {oversold} "
                    f"| {accepted / to_last:,.0f} | {2 * n / wall:,.0f} "
                    f"| {statistics.median(lat):.1f} | {pct(lat, 0.99):.1f} "
                    f"| {1000 * cpu / (2 * n):.2f} | {1000 * pg_cpu / (2 * n):.2f} | {gen} |"
                )
                sys.stdout.flush()
                assert accepted == in_db == stock, (accepted, in_db, stock)
                rates.setdefault((n, path), []).append(accepted / to_last)
        if rounds > 1:
            summarise(rates, paths, rounds)
    finally:
        await http.close()
        stack.close()
        await services.close()


def main(
    server: str, redis_url: str, sizes: list[int], inflight: int, paths: list[str], rounds: int
) -> None:
    with fresh_deployment(server, redis_url, "flash") as settings:
        asyncio.run(bench(settings, sizes, inflight, paths, rounds))


@contextmanager
def fresh_deployment(server: str, redis_url: str, label: str, **more: Any) -> Iterator[Settings]:
    """Settings of a bench run of its own: a fresh database migrated to head, its own Redis
    prefix and secret; the database dropped and the keys cleared afterwards. Every bench
    that needs a deployment starts here."""
    tag = secrets.token_hex(3)
    name = f"panen_bench_{label}_{tag}"
    url = ensure_database(server, name, fresh=True)
    settings = replace(
        Settings(),
        database_url=url,
        redis_url=redis_url,
        redis_prefix=f"panen_bench_{tag}",
        secret_key=secrets.token_hex(32),
        **more,
    )
    try:
        upgrade(url)
        yield settings
    finally:
        drop_database(server, name)
        asyncio.run(clear_redis(settings))


async def clear_redis(settings: Settings) -> None:
    from core.redis import close, create_redis

    redis = create_redis(settings.redis_url)
    keys = [k async for k in redis.scan_iter(f"{settings.redis_prefix}:*", count=1000)]
    for i in range(0, len(keys), 500):
        await redis.delete(*keys[i : i + 500])
    await close(redis)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--buyers", default="1000,5000")
    p.add_argument("--inflight", type=int, default=256)
    p.add_argument(
        "--paths", default="baseline,redis", help="which paths to run, in order (+ http, socket)"
    )
    p.add_argument("--rounds", type=int, default=1, help="repeat each size; prints medians")
    a = p.parse_args()
    sizes = [int(x) for x in a.buyers.split(",")]
    main(a.server, a.redis, sizes, a.inflight, a.paths.split(","), a.rounds)
