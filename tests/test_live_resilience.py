"""Live rooms surviving their surroundings: Redis restarting, a process dying or stopping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.api import build_world, register
from tests.conftest import process_env
from tests.live_clients import Viewer
from tests.processes import Server, ThrowawayRedis, running


@pytest.fixture
def own_redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    with running(server):
        yield server


async def _room(base: str, admin_token: str) -> tuple[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=20) as http:
        world = await build_world(http, admin_token)
        viewer = await register(http, "resilient")
    return f"session:{world.session['id']}", viewer


async def test_a_redis_restart_mid_session_heals_and_clients_get_a_snapshot(
    settings: Any, admin_token: str, own_redis: ThrowawayRedis
) -> None:
    env = {**process_env(settings), "REDIS_URL": own_redis.url, "PANEN_TICKER_HZ": "10"}
    a, b = Server(env), Server(env)
    try:
        a.start()
        b.start()
        topic, viewer = await _room(a.base, admin_token)
        talker = await Viewer.connect(a.ws, viewer.token)
        listener = await Viewer.connect(b.ws)
        await talker.subscribe(topic)
        first = await listener.subscribe(topic)
        await talker.send({"type": "chat", "topic": topic, "text": "before"})
        await listener.expect(lambda f: f["type"] == "chat")

        own_redis.stop()
        await asyncio.sleep(0.5)
        own_redis.start()  # empty: sequence, history and room state are gone

        # every process resubscribes by itself; its viewers get a fresh snapshot
        healed = await listener.expect(lambda f: f["type"] == "subscribed", within=15)
        assert healed["recovered"] is False and "totals" in healed["snapshot"]
        assert healed["seq"] > first["seq"]  # a lost sequence restarts above the old one
        await talker.expect(lambda f: f["type"] == "subscribed", within=15)

        # and the room works again across both processes
        deadline = time.monotonic() + 10
        while True:
            await talker.send({"type": "chat", "id": "again", "topic": topic, "text": "after"})
            reply = await talker.expect(lambda f: f.get("id") == "again")
            if reply["type"] == "ack" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        line = await listener.expect(lambda f: f["type"] == "chat")
        assert line["message"]["text"] == "after" and line["seq"] > healed["seq"]

        # the rebuilt room counts both viewers again: in a frame after the heal, or already in
        # the snapshot a viewer got (then the ticker, seeing no change, sends no frame)
        def counted(f: dict[str, Any]) -> bool:
            if f["type"] == "subscribed" and f["seq"] >= healed["seq"]:
                return bool(f.get("snapshot", {}).get("totals", {}).get("viewers") == 2)
            return (
                f["type"] == "ticker" and f["seq"] > healed["seq"] and f["totals"]["viewers"] == 2
            )

        if not any(counted(f) for f in listener.seen):
            await listener.expect(counted)
        await talker.close()
        await listener.close()
    finally:
        b.stop()
        a.stop()


async def test_viewers_of_a_killed_process_stop_counting_and_a_stopping_process_says_reconnect(
    settings: Any, admin_token: str
) -> None:
    env = {**process_env(settings), "PANEN_TICKER_HZ": "10"}
    a, b, c = Server(env), Server(env), Server(env)
    try:
        a.start()
        b.start()
        c.start()
        topic, _ = await _room(a.base, admin_token)
        watcher = await Viewer.connect(a.ws)
        await watcher.subscribe(topic)
        doomed = [await Viewer.connect(b.ws) for _ in range(3)]
        for v in doomed:
            await v.subscribe(topic)
        leaving = await Viewer.connect(c.ws)
        await leaving.subscribe(topic)
        await watcher.expect(lambda f: f["type"] == "ticker" and f["totals"]["viewers"] == 5)

        assert b.proc is not None
        b.proc.kill()  # no goodbye: its viewers expire with its presence
        await watcher.expect(
            lambda f: f["type"] == "ticker" and f["totals"]["viewers"] == 2, within=25
        )

        c.stop()  # a graceful stop tells its clients to reconnect elsewhere
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await leaving.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        await watcher.expect(lambda f: f["type"] == "ticker" and f["totals"]["viewers"] == 1)
        await watcher.close()
    finally:
        c.stop()
        b.stop()
        a.stop()
