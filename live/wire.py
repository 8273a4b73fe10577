"""The server side of `GET /ws` in `panen serve`: an asyncio protocol on the websockets
library's sans-I/O `ServerProtocol`, which uvicorn runs as its WebSocket protocol (its `ws`
setting takes a protocol class).

Why not uvicorn's own: through ASGI every socket holds, for its whole life, a task parked
in `receive()`, a queue of three deques, events, a scope and the coroutine frames between
the server and the gateway: about 13 KB of an idle socket's 23 (tracemalloc, see
docs/benchmarks.md). Here an idle socket is this object, websockets' parser and the
gateway's `Connection`; a task runs only while the socket's frames are being answered.
And the fan-out writes a frame, framed once for every socket (`live.connection.text`),
straight to the transport: public interfaces of asyncio and websockets, where it used to
reach into uvicorn's protocol.

A socket's life, in order (the ASGI endpoint in `live.gateway` runs the same steps):
upgrade → `opened` (counted against its address) → `received` for each frame, one at a
time, in a task that exists while frames wait → `ended` (out of its rooms and counts),
which waits for the frame in hand so nothing it takes is left behind. Reading stops while
16 frames wait or the client is not reading what we send (pongs included), so a client
cannot grow our buffers by not reading.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import weakref
from typing import Any, cast
from urllib.parse import unquote

from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from live import gateway as gw
from live import limits
from live.connection import WIRE, Connection, Message

log = logging.getLogger("panen.live")

# websockets logs every connection opened and closed at INFO: too many lines at 20,000.
_quiet = logging.getLogger("panen.live.wire")
_quiet.setLevel(logging.WARNING)

SLOTS = 20  # the sockets are pinged a twentieth at a time (settings.ws_ping_s: the cycle)
CLOSE_WAIT_S = 10.0  # after our close frame, how long the client has to hang up
INBOX_PAUSE = 16  # frames waiting to be answered before the socket stops being read
INTERNAL = 1011
GOING_AWAY = 1012  # the server restarts: the client reconnects, with `since`
BAD_DATA = 1007


class WireSocket(asyncio.Protocol):
    """One client socket, from the HTTP upgrade to the close."""

    __slots__ = (
        "__weakref__",
        "app_state",
        "client_host",
        "close_timer",
        "config",
        "conn",
        "connections",
        "counted",
        "ending",
        "inbox",
        "parts",
        "pinged",
        "proto",
        "reading",
        "said_close",
        "server_tasks",
        "transport",
        "waiters",
        "worker",
        "writable",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.config = config
        self.app_state = app_state
        self.connections = server_state.connections
        self.server_tasks = server_state.tasks
        # No extensions: frames are framed once for every socket, so never compressed. A
        # message over the gateway's limit (fragmented or not) is closed with 1009 here.
        self.proto = ServerProtocol(max_size=limits.MAX_FRAME_BYTES, logger=_quiet)
        self.transport: asyncio.Transport | None = None
        self.client_host = "unknown"
        self.conn: Connection | None = None
        self.counted = False
        self.ending = False  # the gateway is letting go of this socket
        self.inbox: list[str | None] = []
        self.parts: list[bytes] = []  # a fragmented message so far
        self.worker: asyncio.Task[None] | None = None  # answering the inbox, while it has frames
        self.writable = True
        self.waiters: list[asyncio.Future[None]] = []
        self.reading = True
        self.pinged = False
        self.said_close = False  # our close frame is written: nothing may follow it
        self.close_timer: asyncio.TimerHandle | None = None

    # asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.connections.add(self)  # type: ignore[arg-type]  # uvicorn: shutdown() at exit
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.client_host = str(peer[0])

    def data_received(self, data: bytes) -> None:
        if self.said_close:
            return  # drained unread: nothing it sends after our close frame matters
        self.pinged = False  # the peer is alive
        self.proto.receive_data(data)
        for event in self.proto.events_received():
            if isinstance(event, Request):
                self._upgrade(event)
            elif isinstance(event, Frame):
                self._frame(event)
        if self.conn is None and self.proto.handshake_exc is not None:
            # Not a request websockets could read: its answer, or ours if it has none.
            transport = self.transport
            if transport is not None and not transport.is_closing():
                pending = b"".join(self.proto.data_to_send())
                transport.write(pending or self.proto.reject(400, "bad request\n").serialize())
                transport.close()
            return
        self._write_pending()
        if self.proto.parser_exc is not None:  # a protocol error: websockets closed it
            self._close()
            self._end(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        for slot in _open:
            slot.discard(self)
        if self.close_timer is not None:
            self.close_timer.cancel()
        self.writable = True  # nothing will drain now: writers must not wait for it
        self._wake_writers()
        self._end(None)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def pause_writing(self) -> None:
        self.writable = False
        self._read_or_not()  # a client that does not read gets nothing more from us

    def resume_writing(self) -> None:
        self.writable = True
        self.pinged = False  # it reads: alive
        self._wake_writers()
        self._read_or_not()

    def shutdown(self) -> None:
        """uvicorn stops: tell the client to come back, and close."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not self.writable:  # it would never read our close frame
            transport.abort()
            return
        if self.proto.state is State.OPEN:
            self.proto.send_close(GOING_AWAY)
            self._write_pending()
        transport.close()

    # the handshake

    def _upgrade(self, request: Request) -> None:
        # Behind a root path the proxy strips it, as for every route (uvicorn's scope has
        # root_path + this path, which the app strips again).
        if unquote(request.path.partition("?")[0]) != gw.PATH:
            # As Starlette answers a socket no route takes.
            self.proto.send_response(self.proto.reject(403, ""))
            self._write_pending()
            self._close()
            return
        response = self.proto.accept(request)
        self.proto.send_response(response)
        self._write_pending()
        if response.status_code != 101:  # not a valid upgrade: websockets said why
            self._close()
            return
        self.conn = Connection(self._send, self._abort, self._direct)
        self.worker = self._spawn(self._open(request))
        _open[next(_slots)].add(self)
        _sweeping(self._gateway().services.settings.ws_ping_s)

    async def _open(self, request: Request) -> None:
        conn = self.conn
        assert conn is not None
        try:
            host = await self._client_host(request)
            counted = await gw.opened(self._gateway(), conn, host)
        except Exception:
            log.exception("unhandled error", extra={"path": gw.PATH})
            self.worker = None
            self._end(INTERNAL)
            return
        if counted is None:
            self.worker = None
            self._end(gw.POLICY)
            return
        # Counted even when the client left meanwhile: `ended` waits for this task, so it
        # releases the count.
        self.counted = counted
        await self._answer()

    async def _client_host(self, request: Request) -> str:
        """The client's address, from a trusted proxy's X-Forwarded-For (the rule HTTP
        requests follow: uvicorn's own middleware, given this socket's scope)."""
        if not self.config.proxy_headers:
            return self.client_host
        scope: dict[str, Any] = {
            "type": "websocket",
            "client": (self.client_host, 0),
            "headers": [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in request.headers.raw_items()
            ],
        }
        trusted = self.config.forwarded_allow_ips or "127.0.0.1"
        proxies = _proxies(trusted if isinstance(trusted, str) else ",".join(trusted))
        await proxies(scope, None, None)  # type: ignore[arg-type]
        client = scope.get("client")
        return str(client[0]) if client else self.client_host

    # frames from the client

    def _frame(self, frame: Frame) -> None:
        if self.ending:
            return  # on its way out: nothing it sends matters now
        if frame.opcode is Opcode.CLOSE:
            # websockets answered it (or it answers ours): the handshake is done.
            self._write_pending()
            self._close()
            self._end(None)
            return
        conn = self.conn
        if conn is None:
            return
        # Pings, pongs and fragments count against the socket's frame rate as whole messages
        # do (`received` counts those): a flood of empty ones costs parsing all the same.
        whole = frame.fin and frame.opcode in (Opcode.TEXT, Opcode.BINARY)
        if not whole and not conn.frames.take():
            self._end(gw.POLICY)
            return
        if frame.opcode is Opcode.PING or frame.opcode is Opcode.PONG:
            return  # websockets queued the pong
        if frame.opcode is not Opcode.CONT:
            self.parts = [frame.opcode.name.encode()]  # b"TEXT" or b"BINARY", then the data
        self.parts.append(bytes(frame.data))
        if not frame.fin:
            return
        kind, *data = self.parts
        self.parts = []
        if kind == b"BINARY":
            self._received(None)
            return
        try:
            self._received(b"".join(data).decode())
        except UnicodeDecodeError:
            self.proto.fail(BAD_DATA, "frames are UTF-8 text")
            self._write_pending()
            self._close()
            self._end(None)

    def _received(self, raw: str | None) -> None:
        if self.conn is None or self.conn.closed or self.ending:
            return
        self.inbox.append(raw)
        self._read_or_not()
        if self.worker is None:
            self.worker = self._spawn(self._answer())

    async def _answer(self) -> None:
        """Answer the inbox in order; the task ends when it is empty."""
        conn = self.conn
        assert conn is not None
        try:
            while self.inbox and not conn.closed and not self.ending:
                code = await gw.received(self._gateway(), conn, self.inbox.pop(0))
                self._read_or_not()
                if code is not None:
                    self.worker = None
                    self._end(code)
                    return
        finally:
            if self.worker is asyncio.current_task():
                self.worker = None

    def _read_or_not(self) -> None:
        """Read while the client reads what we send and fewer than INBOX_PAUSE frames wait;
        not while the socket is ending (a flooder's frames cost nothing more), until our
        close frame is out: then read, unparsed, to see it hang up."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        read = self.said_close or (
            not self.ending and self.writable and len(self.inbox) < INBOX_PAUSE
        )
        if read != self.reading:
            self.reading = read
            if read:
                transport.resume_reading()
            else:
                transport.pause_reading()

    # frames to the client (Connection's three ways)

    def _direct(self, wire: bytes) -> bool:
        """Write a framed message now if the socket is open and its buffer has room."""
        transport = self.transport
        if (
            not self.writable
            or transport is None
            or transport.is_closing()
            or self.proto.state is not State.OPEN
        ):
            return False
        transport.write(wire)
        return True

    async def _send(self, message: Message) -> None:
        """The queued way: wait for room, then write."""
        while not self.writable:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter
        transport = self.transport
        if transport is None or transport.is_closing() or self.proto.state is not State.OPEN:
            raise ConnectionError("the socket is closed")
        transport.write(message[WIRE])

    def _abort(self, code: int) -> None:
        """Cut a client off at once (too slow to read even its close frame)."""
        if self.transport is not None:
            self.transport.abort()

    # closing

    def _end(self, code: int | None) -> None:
        """Let the gateway go of the socket, once; with `code`, then send our close frame
        and end our side (a client that has not hung up within CLOSE_WAIT_S is cut off)."""
        if self.conn is None or self.ending:
            return
        self.ending = True
        self.inbox.clear()
        self._read_or_not()
        self._spawn(self._finish(self.conn, code))

    async def _finish(self, conn: Connection, code: int | None) -> None:
        # The frame in hand (or the opening) finishes first: whatever it takes (a count, a
        # room, a presence) is there for `ended` to give back.
        worker = self.worker
        if worker is not None and worker is not asyncio.current_task():
            await asyncio.wait({worker})
        try:
            await gw.ended(self._gateway(), conn, self.counted, code)
        finally:
            transport = self.transport
            if code is not None and self.proto.state is State.OPEN and transport is not None:
                self.proto.send_close(code)
                self._write_pending()
                if not transport.is_closing():
                    # Our side is done (FIN after the close frame); what the client still
                    # sends is drained unread until it hangs up too, so a client still
                    # sending gets our close rather than a reset. One that does not hang
                    # up within CLOSE_WAIT_S is cut off.
                    if transport.can_write_eof():
                        transport.write_eof()
                    self._read_or_not()
                    self.close_timer = asyncio.get_running_loop().call_later(
                        CLOSE_WAIT_S, transport.abort
                    )

    def _close(self) -> None:
        """Close the TCP connection, after what is written."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # plumbing

    def _write_pending(self) -> None:
        """Write what websockets has queued; its empty bytestring means "end the TCP
        connection" (a protocol error, a finished close)."""
        pending = self.proto.data_to_send()
        if self.said_close:  # websockets still answers pings while closing: not us
            pending = [chunk for chunk in pending if chunk == b""]
        transport = self.transport
        if not pending or transport is None or transport.is_closing():
            return
        transport.write(b"".join(pending))
        self.said_close = self.proto.close_sent is not None
        if pending[-1] == b"":
            transport.close()

    def _wake_writers(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _gateway(self) -> gw.Gateway:
        gateway: gw.Gateway = self.app_state["live"]
        return gateway

    def _spawn(self, work: Any) -> asyncio.Task[None]:
        # uvicorn waits for its tasks at shutdown (then cancels them).
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self.server_tasks.add(task)
        task.add_done_callback(self.server_tasks.discard)
        task.add_done_callback(_finished)
        return task

    def ping(self) -> None:
        """Keepalive: a peer that sent nothing since the last ping, or has read nothing of
        what we sent in that time, is gone (cut off: it would not read a close frame)."""
        transport = self.transport
        if transport is None or transport.is_closing() or self.proto.state is not State.OPEN:
            return
        if self.worker is not None and self.writable:
            return  # still answering its frames (reading may be paused for them)
        if self.pinged:
            transport.abort()
            return
        self.pinged = True  # cleared by anything it sends, or by it reading what we sent
        if self.writable:
            self.proto.send_ping(b"")
            self._write_pending()


async def _seen(scope: Any, receive: Any, send: Any) -> None:
    pass  # the scope, with the client's address as the proxy gave it, is all we want


@functools.cache
def _proxies(trusted: str) -> ProxyHeadersMiddleware:
    return ProxyHeadersMiddleware(_seen, trusted)


def _finished(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("unhandled error", exc_info=task.exception(), extra={"path": gw.PATH})


# Every open socket of this process, in SLOTS slots: each sweep pings one slot, so every
# socket is pinged once per `ws_ping_s` (a timer per socket would cost memory; pinging
# all at once, a stall in every room).
_open: list[weakref.WeakSet[WireSocket]] = [weakref.WeakSet() for _ in range(SLOTS)]
_slots = itertools.cycle(range(SLOTS))
_sweeper: list[asyncio.Task[None]] = []


def _sweeping(ping_s: float) -> None:
    """Start the sweep on this loop if it is not running here."""
    loop = asyncio.get_running_loop()
    if _sweeper and not _sweeper[0].done() and _sweeper[0].get_loop() is loop:
        return
    _sweeper[:] = [loop.create_task(_sweep(ping_s))]


async def _sweep(ping_s: float) -> None:
    for slot in itertools.cycle(_open):
        await asyncio.sleep(ping_s / SLOTS)
        for sock in list(slot):
            try:
                sock.ping()
            except Exception:
                log.exception("keepalive ping failed")
