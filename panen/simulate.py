"""Simulated viewers for `panen demo --simulate N`: they watch, like, chat, buy and donate
through the public API and the WebSocket, exactly as a real client does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import urllib.error
import urllib.request
from typing import Any

import websockets

from panen.seed import sample_address

CHAT_LINES = [
    "Mantap, panennya segar!",
    "Berapa lama pengirimannya ke Bandung?",
    "Semoga berkah untuk adik-adik 🙏",
    "Kopinya wangi banget",
    "Sudah pesan 2, ditunggu ya kak",
    "Love Package-nya tinggal sedikit lagi!",
    "Salam dari Surabaya",
    "Harganya bersahabat",
]


def _http(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)  # noqa: S310
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if method == "POST" and path in ("/api/orders", "/api/donations"):
        req.add_header("Idempotency-Key", secrets.token_hex(8))
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return {"error": json.loads(err.read() or b"{}").get("error", {"code": err.code})}


async def call(
    base: str, method: str, path: str, body: Any = None, token: str | None = None
) -> Any:
    return await asyncio.to_thread(_http, base, method, path, body, token)


class Viewer:
    def __init__(self, n: int, base: str, session: dict[str, Any], rng: random.Random) -> None:
        self.n = n
        self.base = base
        self.session = session
        self.rng = rng
        self.token = ""
        self.acks: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def run(self) -> None:
        handle = f"sim_{self.n}_{secrets.token_hex(3)}"
        out = await call(
            self.base,
            "POST",
            "/api/auth/register",
            {
                "handle": handle,
                "password": secrets.token_hex(8),
                "display_name": f"Penonton {self.n}",
            },
        )
        self.token = out["token"]
        # Somewhere to ship what they buy (one tap buys to the default address).
        await call(self.base, "POST", "/api/me/addresses", sample_address(self.n), self.token)
        url = self.base.replace("http", "ws", 1) + "/ws"
        async with websockets.connect(url, max_size=2**20) as ws:
            await ws.send(json.dumps({"type": "hello", "token": self.token}))
            await ws.send(
                json.dumps({"type": "subscribe", "topic": f"session:{self.session['id']}"})
            )
            reader = asyncio.create_task(self._read(ws))
            try:
                while True:
                    await asyncio.sleep(self.rng.uniform(2, 8))
                    await self._act(ws)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _read(self, ws: Any) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            fut = self.acks.pop(str(frame.get("id")), None)
            if fut is not None and not fut.done():
                fut.set_result(frame)

    async def _request(self, ws: Any, frame: dict[str, Any]) -> dict[str, Any]:
        frame_id = secrets.token_hex(4)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.acks[frame_id] = fut
        await ws.send(json.dumps({**frame, "id": frame_id}))
        return await asyncio.wait_for(fut, timeout=15)

    async def _act(self, ws: Any) -> None:
        topic = f"session:{self.session['id']}"
        roll = self.rng.random()
        if roll < 0.45:
            await ws.send(
                json.dumps({"type": "like", "topic": topic, "count": self.rng.randint(1, 3)})
            )
        elif roll < 0.65:
            await ws.send(
                json.dumps({"type": "chat", "topic": topic, "text": self.rng.choice(CHAT_LINES)})
            )
        elif roll < 0.9 and self.session["listings"]:
            listing = self.rng.choice(self.session["listings"])
            ack = await self._request(
                ws,
                {
                    "type": "order",
                    "listing_id": listing["id"],
                    "quantity": self.rng.randint(1, 2),
                    "idempotency_key": secrets.token_hex(8),
                },
            )
            payment = (ack.get("order") or {}).get("payment")
            if payment:
                await call(
                    self.base,
                    "POST",
                    f"/api/payments/{payment['id']}/sandbox/approve",
                    token=self.token,
                )
        else:
            out = await call(
                self.base,
                "POST",
                "/api/donations",
                {
                    "charity_id": self.session["charity_id"],
                    "session_id": self.session["id"],
                    "amount": self.rng.choice([10_000, 25_000, 50_000, 150_000]),
                    "message": self.rng.choice(CHAT_LINES),
                    "visibility": self.rng.choice(["public", "first_name", "anonymous"]),
                },
                self.token,
            )
            payment = out.get("payment")
            if payment:
                await call(
                    self.base,
                    "POST",
                    f"/api/payments/{payment['id']}/sandbox/approve",
                    token=self.token,
                )


async def simulate(base: str, viewers: int, seed: int | None = None) -> None:
    rng = random.Random(seed)  # a demo's randomness, not a secret
    live = (await call(base, "GET", "/api/sessions?status=live"))["sessions"]
    if not live:
        raise RuntimeError("no live session to simulate viewers in")
    session = await call(base, "GET", f"/api/sessions/{live[0]['id']}")

    async def one(n: int) -> None:
        while True:  # a viewer whose socket drops comes back, as people do
            try:
                await Viewer(n, base, session, random.Random(rng.random())).run()
            except (TimeoutError, OSError, websockets.WebSocketException, KeyError):
                await asyncio.sleep(2)

    await asyncio.gather(*(one(n) for n in range(1, viewers + 1)))


if __name__ == "__main__":
    import sys

    asyncio.run(simulate(sys.argv[1], int(sys.argv[2])))
