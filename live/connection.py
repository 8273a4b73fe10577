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
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.frames import Frame, Opcode

from core.auth import Principal
from live import limits

log = logging.getLogger("panen.live")

Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]

TOO_SLOW = 1013  # "try again later": the client reconnects, with `since`


def text(frame: bytes | str) -> Message:
    """An ASGI send message, built once per frame and shared by every socket, with the frame
    as it goes on the wire. A server's frames are not masked and ours are not compressed, so
    those bytes are the same for every socket: a write that has them skips framing the
    message again for each one (with permessage-deflate on, an uncompressed message is
    still valid: its RSV1 bit says so)."""
    data = frame.encode() if isinstance(frame, str) else frame
    return {
        "type": "websocket.send",
        "text": frame if isinstance(frame, str) else frame.decode(),
        WIRE: Frame(Opcode.TEXT, data).serialize(mask=False),
    }


WIRE = "panen.wire"  # ASGI servers ignore keys they do not know


class Connection:
    __slots__ = (
        "abort",
        "checked_at",
        "closed",
        "device",
        "direct",
        "display_name",
        "frames",
        "likes",
        "principal",
        "queue",
        "send",
        "sending",
        "token",
        "topics",
        "writer",
    )

    def __init__(
        self,
        send: Send,
        abort: Callable[[int], None],
        direct: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.send = send
        self.abort = abort
        # Writes a framed message at once when the socket's buffer has room (True), sparing
        # a task switch per socket per frame; anything else goes through the queue.
        self.direct = direct
        self.sending = False
        # A list, not a deque: at most SEND_QUEUE_FRAMES long, and empty it is 56 bytes
        # where a deque's first block is 760, on every idle socket.
        self.queue: list[Message] = []
        self.closed = False
        self.principal: Principal | None = None
        # The hello's token, checked again (revocation, roles) every identity.FRESH_S.
        self.token: str | None = None
        self.checked_at = 0.0
        self.display_name: str | None = None
        # The device watch minutes are capped by: the client's address (never an id the
        # client chooses, which would lift the cap).
        self.device: str | None = None
        self.topics: dict[str, str] = {}  # the client's topic name -> the internal topic
        self.frames = limits.Bucket(limits.FRAMES_PER_SECOND, 2 * limits.FRAMES_PER_SECOND)
        self.likes = limits.Bucket(limits.LIKES_PER_SECOND, limits.LIKES_PER_SECOND)
        # Started only while frames wait: an idle socket costs no task.
        self.writer: asyncio.Task[None] | None = None

    def push(self, message: Message) -> None:
        if self.closed:
            return
        if not self.queue and not self.sending and self.direct is not None:
            try:
                if self.direct(message[WIRE]):
                    return
            except Exception:  # the socket is closing under us
                self.closed = True
                return
        if len(self.queue) >= limits.SEND_QUEUE_FRAMES:
            self.drop(TOO_SLOW)
            return
        self.queue.append(message)
        if self.writer is None:
            self.writer = asyncio.create_task(self._drain())

    def push_frame(self, frame: bytes | str) -> None:
        self.push(text(frame))

    def drop(self, code: int) -> None:
        """Stop sending at once and close the socket without waiting on the client."""
        if self.closed:
            return
        self.closed = True
        self.queue.clear()
        if self.writer is not None:
            self.writer.cancel()
        self.abort(code)

    async def _drain(self) -> None:
        queue = self.queue
        try:
            while queue:
                self.sending = True
                await self.send(queue.pop(0))
                self.sending = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client went away mid-send
            log.debug("socket send failed: %s", exc)
            self.closed = True
        finally:
            self.sending = False
            self.writer = None

    async def flush(self, within_s: float) -> None:
        """Let queued frames (an error, a close reason) go out before the socket closes."""
        deadline = asyncio.get_running_loop().time() + within_s
        while self.queue and not self.closed and self.writer is not None:
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        self.closed = True
        writer = self.writer
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
