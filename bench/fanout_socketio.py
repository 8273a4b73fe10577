"""The baseline for bench/fanout.py: what users would otherwise pick, python-socketio with
its AsyncRedisManager, every event emitted to the room as it comes.

Run by the bench as `uvicorn bench.fanout_socketio:app` with REDIS_URL and SIO_CHANNEL.
"""

from __future__ import annotations

import os

import socketio

manager = socketio.AsyncRedisManager(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    channel=os.environ.get("SIO_CHANNEL", "socketio"),
)
sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager, cors_allowed_origins="*")


@sio.on("join")  # type: ignore[untyped-decorator]
async def join(sid: str, room: str) -> None:
    await sio.enter_room(sid, room)


app = socketio.ASGIApp(sio)
