"""One client socket: who it is, its topics, and its bounded send queue.

Frames reach a socket only through `push`, which never waits: the room's fan-out appends
the same pre-serialised message to every queue, and each socket's own writer task drains
its queue. A queue that overflows means the client cannot keep up: it is dropped (it may
reconnect with `since`), so one slow phone never holds a room back or grows memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from core.auth import Principal
from live import limits

log = logging.getLogger("panen.live")

Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]

TOO_SLOW = 1013  # "try again later": the client reconnects, with `since`


def text(frame: bytes | str) -> Message:
    """An ASGI send message, built once per frame and shared by every socket."""
    return {"type": "websocket.send", "text": frame if isinstance(frame, str) else frame.decode()}


class Connection:
    __slots__ = (
        "abort",
        "closed",
        "display_name",
        "frames",
        "likes",
        "principal",
        "queue",
        "send",
        "topics",
        "wake",
        "writer",
    )

    def __init__(self, send: Send, abort: Callable[[int], None]) -> None:
        self.send = send
        self.abort = abort
        self.queue: deque[Message] = deque()
        self.wake = asyncio.Event()
        self.closed = False
        self.principal: Principal | None = None
        self.display_name: str | None = None
        self.topics: dict[str, str] = {}  # the client's topic name -> the internal topic
        self.frames = limits.Bucket(limits.FRAMES_PER_SECOND, 2 * limits.FRAMES_PER_SECOND)
        self.likes = limits.Bucket(limits.LIKES_PER_SECOND, limits.LIKES_PER_SECOND)
        self.writer: asyncio.Task[None] = asyncio.create_task(self._drain())

    def push(self, message: Message) -> None:
        if self.closed:
            return
        if len(self.queue) >= limits.SEND_QUEUE_FRAMES:
            self.drop(TOO_SLOW)
            return
        self.queue.append(message)
        self.wake.set()

    def push_frame(self, frame: bytes | str) -> None:
        self.push(text(frame))

    def drop(self, code: int) -> None:
        """Stop sending at once and close the socket without waiting on the client."""
        if self.closed:
            return
        self.closed = True
        self.queue.clear()
        self.writer.cancel()
        self.abort(code)

    async def _drain(self) -> None:
        queue = self.queue
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while queue:
                    await self.send(queue.popleft())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client went away mid-send
            log.debug("socket send failed: %s", exc)
            self.closed = True

    async def flush(self, within_s: float) -> None:
        """Let queued frames (an error, a close reason) go out before the socket closes."""
        deadline = asyncio.get_running_loop().time() + within_s
        while self.queue and not self.closed and not self.writer.done():
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        self.closed = True
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.writer
