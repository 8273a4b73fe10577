"""Watch minutes counted server-side on two real `panen serve` processes and a real worker,
with real WebSocket clients: a viewer earns exactly the capped points however many sockets
they open, sees them on `me`, and turns them into Love Packages the room's ticker shows.

A "minute" lasts one second here (`PANEN_ENERGY_RULES`), so the test runs in seconds.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from tests.api import Actor, build_world, register, user_with_roles
from tests.conftest import process_env
from tests.live_clients import Viewer
from tests.processes import Server, Worker

CAP = 3
RULES = {
    "watch_minute_s": 1,
    "watch_max_minutes_per_session": CAP,
    "points_ttl_s": 3600,
    "device_accounts_per_minute": 1,
    "likes_per_point": 10,
    "like_max_points_per_session": 5,
}


@pytest.fixture(scope="module")
def cluster(settings: Any) -> Iterator[tuple[Server, Server]]:
    env = {
        **process_env(settings),
        "PANEN_TICKER_HZ": "10",
        "PANEN_ENERGY_RULES": orjson.dumps(RULES).decode(),
    }
    a, b, worker = Server(env), Server(env), Worker(env)
    try:
        a.start()
        b.start()
        worker.start()
        yield a, b
    finally:
        worker.stop()
        b.stop()
        a.stop()


async def balance(http: httpx.AsyncClient, user: Actor) -> dict[str, Any]:
    r = await http.get("/api/me/points", headers=user.headers)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_a_viewer_earns_exactly_the_capped_watch_points_however_many_sockets(
    cluster: tuple[Server, Server], admin_token: str
) -> None:
    a, b = cluster
    async with httpx.AsyncClient(base_url=a.base, timeout=20) as http:
        world = await build_world(http, admin_token)
        sid = world.session["id"]
        r = await http.post(f"/api/sessions/{sid}/start", headers=world.host.headers)
        assert r.status_code == 200, r.text
        topic = f"session:{sid}"
        viewer = await register(http, "watcher")
        lurker = await register(http, "lurker")  # logged in, never in a room
        sockets = [await Viewer.connect(s.ws, viewer.token) for s in (a, a, a, b, b)]
        for v in sockets:
            assert (await v.subscribe(topic))["type"] == "subscribed"
        me = sockets[-1]
        assert (await me.subscribe("me"))["type"] == "subscribed"
        idle = await Viewer.connect(a.ws, lurker.token)
        deadline = time.monotonic() + 20
        while (await balance(http, viewer))["balance"] < CAP:
            assert time.monotonic() < deadline, "the watch points never reached the cap"
            await asyncio.sleep(0.5)
        # Keep watching past the cap: nothing more is paid.
        await asyncio.sleep(3 * RULES["watch_minute_s"] + 1)
        got = await balance(http, viewer)
        assert got["balance"] == CAP
        assert all(h["kind"] == "watch" and h["points"] == 1 for h in got["history"])
        assert (await balance(http, lurker))["balance"] == 0
        frame = await me.expect(
            lambda f: (
                f["type"] == "ticker"
                and any(e["type"] == "points" and e["balance"] == CAP for e in f["events"])
            )
        )
        assert frame["topic"] == "me"

        # A sponsor turns the energy into a Love Package (1 point = Rp 50,000 here).
        sponsor = await user_with_roles(http, admin_token, "sponsor")
        r = await http.post(
            "/api/pools",
            headers=sponsor.headers,
            json={
                "sponsor_name": "Bank Tani",
                "campaign_id": world.campaign["id"],
                "rate_points": 1,
                "rate_amount": 50_000,
                "cap": 1_000_000,
            },
        )
        assert r.status_code == 201, r.text
        r = await http.post(
            "/api/points/redeem",
            headers={**viewer.headers, "Idempotency-Key": secrets.token_hex(8)},
            json={"pool_id": r.json()["id"], "points": CAP, "session_id": sid},
        )
        assert r.status_code == 201, r.text
        room = await sockets[0].expect(
            lambda f: f["type"] == "ticker" and f["totals"].get("energy", {}).get("units") == 1
        )
        assert room["totals"]["energy"]["amount"] == 150_000
        assert room["totals"]["energy"]["unit_name"] == "Love Package"
        assert (await balance(http, viewer))["balance"] == 0
        for v in [*sockets, idle]:
            await v.close()


async def test_accounts_on_one_address_earn_one_minute_at_a_time_whatever_device_they_name(
    cluster: tuple[Server, Server], admin_token: str, db: Any
) -> None:
    a, b = cluster
    async with httpx.AsyncClient(base_url=a.base, timeout=20) as http:
        world = await build_world(http, admin_token)
        sid = world.session["id"]
        r = await http.post(f"/api/sessions/{sid}/start", headers=world.host.headers)
        assert r.status_code == 200, r.text
        topic = f"session:{sid}"
        twins = [await register(http, "twin") for _ in range(2)]
        sockets = []
        for user, server in zip(twins, (a, b), strict=True):
            v = await Viewer.connect(server.ws)
            # Each names a device of its own: the cap still holds, by their one address.
            phone = f"phone-{secrets.token_hex(4)}"
            await v.send({"type": "hello", "token": user.token, "device_id": phone})
            assert (await v.expect(lambda f: f["type"] in ("welcome", "error")))[
                "type"
            ] == "welcome"
            assert (await v.subscribe(topic))["type"] == "subscribed"
            sockets.append(v)
        # A scripted like flood from one twin: far more likes than the cap pays for.
        for _ in range(20):
            await sockets[0].send({"type": "like", "topic": topic, "count": 50})
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + 20
        while True:
            got = [await balance(http, u) for u in twins]
            if sum(g["balance"] for g in got) >= 2 * CAP + 5:
                break
            assert time.monotonic() < deadline, f"points stalled at {got}"
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)
        async with db.reader() as s:
            per_minute = (
                await s.execute(
                    text(
                        "SELECT slot, count(*) FROM points_transactions"
                        " WHERE kind = 'watch' AND user_id = ANY(:u) GROUP BY slot"
                    ),
                    {"u": [u.id for u in twins]},
                )
            ).all()
            likes = await s.scalar(
                text(
                    "SELECT sum(points) FROM points_transactions"
                    " WHERE kind = 'like' AND user_id = :u"
                ),
                {"u": twins[0].id},
            )
        assert len(per_minute) == 2 * CAP and all(n == 1 for _, n in per_minute)
        assert likes == 5
        assert [(await balance(http, u))["balance"] for u in twins] == [CAP + 5, CAP]
        for v in sockets:
            await v.close()
