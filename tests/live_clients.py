"""A WebSocket client for the live-room tests: frames as dicts, waits with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection


class Viewer:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, url: str, token: str | None = None, **kw: Any) -> Viewer:
        viewer = cls(await websockets.connect(url, **kw))
        if token is not None:
            await viewer.send({"type": "hello", "token": token})
            await viewer.expect(lambda f: f["type"] in ("welcome", "error"))
        return viewer

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(frame).decode())

    async def recv(self, within: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), within)
        frame: dict[str, Any] = orjson.loads(raw)
        self.seen.append(frame)
        return frame

    async def expect(
        self, match: Callable[[dict[str, Any]], bool], within: float = 8.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching frame; saw {self.seen[-5:]}")
            try:
                frame = await self.recv(left)
            except TimeoutError:
                raise AssertionError(f"no matching frame; saw {self.seen[-6:]}") from None
            if match(frame):
                return frame

    async def subscribe(self, topic: str, since: int | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "subscribe", "topic": topic}
        if since is not None:
            frame["since"] = since
        await self.send(frame)
        return await self.expect(lambda f: f["type"] in ("subscribed", "error"))

    async def close(self) -> None:
        await self.ws.close()


def ticker_with(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["type"] == "ticker" and any(e["type"] == kind for e in f["events"])
