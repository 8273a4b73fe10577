"""`GET /ws`: one socket per client, many topics (see API.md, "WebSocket").

Reading a socket and answering its frames happens here; everything a socket receives from
rooms goes through its bounded queue (`live.connection`). A bad frame gets an error frame
and the socket stays open; a frame over the size limit closes it with 1009, a flood or a
user over the connection limit with 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope
from starlette.types import Send as Send_
from starlette.websockets import WebSocket

from commerce.orders.schemas import order_frame
from commerce.orders.service import place_order
from core.accounts import get_user
from core.db import is_transient
from core.errors import ApiError
from core.identity import FRESH_S
from core.redis import UNREACHABLE
from core.services import Services
from donations.gifts.schemas import gift_frame
from donations.gifts.service import donate
from live import chat, limits, presence, rooms
from live.connection import Connection
from live.history import TopicKeys
from live.hub import Hub, Unavailable
from live.once import Once
from live.protocol import PONG, Frame, FrameError, error_frame, parse

log = logging.getLogger("panen.live")

TOO_BIG = 1009
ORDER_TIMEOUT_S = 20.0  # frames of one socket are answered in order: never wait forever
POLICY = 1008


class Gateway:
    """What every socket of this process shares: services, the hub, topic owners."""

    def __init__(self, services: Services, hub: Hub) -> None:
        self.services = services
        self.hub = hub
        # topic -> (exists, its host's or farmer's user id); neither ever changes
        self.owners: Once[tuple[bool, str | None]] = Once(fresh_s=24 * 3600)
        # Told of every like accepted (energy points count them: live.watch).
        self.on_like: Callable[[Connection, str, int], None] | None = None

    async def owner_of(self, topic: str) -> str | None:
        exists, owner = await self.owners.get(
            topic, lambda: rooms.topic_exists(self.services.db, topic)
        )
        if not exists:
            raise FrameError("not_found", f"no such topic {topic!r}", "topic")
        return owner


_closing: set[asyncio.Task[None]] = set()


def _closer(websocket: WebSocket) -> Callable[[int], None]:
    """Close a socket without waiting on a client that may never read the close."""

    def abort(code: int) -> None:
        async def close() -> None:
            try:
                async with asyncio.timeout(2):
                    await websocket.close(code)
            except Exception:  # noqa: S110 - the client is gone either way
                pass

        task = asyncio.create_task(close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    return abort


async def endpoint(websocket: WebSocket) -> None:
    """A socket through any ASGI server (and the in-process test client). `panen serve`
    hands its sockets to `live.wire` instead, which drives the same steps below without a
    task per idle socket."""
    gateway: Gateway = websocket.app.state.live
    await websocket.accept()
    conn = Connection(websocket.send, _closer(websocket))
    address = websocket.client.host if websocket.client else "unknown"
    counted = await opened(gateway, conn, address)
    if counted is None:
        await conn.flush(1.0)
        await websocket.close(POLICY)
        return
    close_code: int | None = None
    try:
        while not conn.closed and close_code is None:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            close_code = await received(gateway, conn, message.get("text"))
    finally:
        await ended(gateway, conn, counted, close_code)
        if close_code is not None:
            try:
                async with asyncio.timeout(2):
                    await websocket.close(close_code)
            except Exception:  # noqa: S110 - the client is gone either way
                pass


# The steps of a socket's life, whatever server carries it.


async def opened(gateway: Gateway, conn: Connection, host: str) -> bool | None:
    """A socket accepted from `host`: counted against its address (True if counted, False
    if there is no limit or Redis is away), or None when the address is at its limit: the
    refusal is queued and the caller closes with 1008."""
    address = "addr:" + host
    # Watch points are capped per device by the address, which a client cannot choose.
    conn.device = address
    counted = await _count_address(gateway, address)
    if counted is None:
        conn.push_frame(error_frame("too_many_connections", "too many sockets from this address"))
        return None
    gateway.hub.connections.add(conn)
    return counted


async def received(gateway: Gateway, conn: Connection, raw: str | None) -> int | None:
    """One client frame (None: a binary one), answered in order; returns the close code
    when the socket must close (its reason is queued first)."""
    if raw is None:
        conn.push_frame(error_frame("invalid_frame", "frames are text", "frame"))
        return None
    if len(raw) > limits.MAX_FRAME_BYTES or len(raw.encode()) > limits.MAX_FRAME_BYTES:
        return TOO_BIG
    if not conn.frames.take():
        return POLICY
    try:
        frame = parse(raw)
        await handle(gateway, conn, frame)
    except FrameError as err:
        conn.push_frame(err.frame())
    except _Close as close:
        conn.push_frame(close.frame)
        return close.code
    return None


async def ended(gateway: Gateway, conn: Connection, counted: bool, close_code: int | None) -> None:
    """The socket is closing: out of its rooms and its counts; with a close code, what is
    queued (the reason) goes out first, for up to a second."""
    address = conn.device or ""
    if counted:
        with contextlib.suppress(*UNREACHABLE):
            await presence.release(
                gateway.services.redis, gateway.services.keys, gateway.hub.owner, address
            )
    gateway.hub.connections.discard(conn)
    for topic in list(conn.topics.values()):
        gateway.hub.leave(conn, topic)
    if close_code is not None and not conn.closed:
        await conn.flush(1.0)
    await conn.close()
    if conn.principal is not None:
        with contextlib.suppress(*UNREACHABLE):
            await presence.release(
                gateway.services.redis,
                gateway.services.keys,
                gateway.hub.owner,
                conn.principal.user_id,
            )


async def _count_address(gateway: Gateway, address: str) -> bool | None:
    """Count a socket against its address (PANEN_SOCKETS_PER_ADDRESS, across processes):
    True if counted, False if not counted (no limit, or Redis away: the room may still be
    watched), None if the address is at its limit."""
    limit = gateway.services.settings.sockets_per_address
    if limit <= 0:
        return False
    services = gateway.services
    try:
        ok = await presence.acquire(
            services.redis, services.keys, gateway.hub.owner, address, limit
        )
    except UNREACHABLE:
        return False
    return True if ok else None


class _Close(Exception):
    def __init__(self, code: int, frame: bytes) -> None:
        super().__init__(code)
        self.code = code
        self.frame = frame


async def handle(gateway: Gateway, conn: Connection, frame: Frame) -> None:
    try:
        if conn.principal is not None:  # a hello too: a revoked socket does not log in again
            await _recheck(gateway, conn, frame)
        await HANDLERS[frame.type](gateway, conn, frame)
    except FrameError as err:
        if err.frame_id is None:
            err.frame_id = frame.id
        raise
    except Unavailable:
        raise FrameError(
            "unavailable", "live rooms are reconnecting; try again", None, frame.id
        ) from None
    except UNREACHABLE:
        raise FrameError(
            "unavailable", "live rooms are reconnecting; try again", None, frame.id
        ) from None
    except (DBAPIError, PoolTimeout) as exc:
        if not is_transient(exc):
            log.exception("frame %s failed", frame.type)
            raise FrameError(
                "internal", "something went wrong on our side", None, frame.id
            ) from None
        raise FrameError("unavailable", "busy right now; try again", None, frame.id) from None
    except _Close:
        raise  # a deliberate close (a policy), not a failure
    except Exception:
        # A bug: logged as one, and answered with an error frame, not a dropped socket.
        log.exception("frame %s failed", frame.type)
        raise FrameError("internal", "something went wrong on our side", None, frame.id) from None


async def _recheck(gateway: Gateway, conn: Connection, frame: Frame) -> None:
    """A socket's user as of now: a token revoked since `hello` (logout, an admin) closes
    the socket, and roles granted or taken apply, within identity.FRESH_S of the change
    (the pages ping every 10 s, so an idle page finds out too)."""
    now = time.monotonic()
    if conn.token is None or now - conn.checked_at < FRESH_S:
        return
    try:
        conn.principal = await gateway.services.identities.principal(conn.token)
    except ApiError as err:
        raise _Close(POLICY, error_frame(err.code, err.message, None, frame.id)) from None
    conn.checked_at = now


def _login(conn: Connection, frame: Frame) -> str:
    if conn.principal is None:
        raise FrameError("unauthorized", "send a hello frame with a token first", None, frame.id)
    return conn.principal.user_id


async def _hello(gateway: Gateway, conn: Connection, frame: Frame) -> None:
    token = frame.str_field("token", 4096)
    device = frame.opt_str("device_id", 64)
    try:
        principal = await gateway.services.identities.principal(token)
    except ApiError as err:
        raise FrameError(err.code, err.message, "token") from None
    if conn.principal is not None:
        if conn.principal.user_id != principal.user_id:
            raise FrameError("already_authenticated", "this socket belongs to another user")
    else:
        services = gateway.services
        if not await presence.acquire(
            services.redis, services.keys, gateway.hub.owner, principal.user_id
        ):
            raise _Close(
                POLICY,
                error_frame(
                    "too_many_connections",
                    f"at most {limits.MAX_CONNECTIONS_PER_USER} sockets per user",
                    None,
                    frame.id,
                ),
            )
        try:
            user = await get_user(services.db, principal.user_id)
        except ApiError:
            await presence.release(
                services.redis, services.keys, gateway.hub.owner, principal.user_id
            )
            raise FrameError("invalid_token", "the token's user does not exist", "token") from None
        conn.display_name = user.display_name
    conn.principal = principal
    conn.token, conn.checked_at = token, time.monotonic()
    del device  # accepted (the contract names it) but never a cap's key: a client chooses it
    out: dict[str, Any] = {
        "type": "welcome",
        "user": {
            "id": principal.user_id,
            "display_name": conn.display_name,
            "roles": sorted(principal.roles),
        },
    }
    if frame.id is not None:
        out["id"] = frame.id
    conn.push_frame(orjson.dumps(out))


async def _resolve(gateway: Gateway, conn: Connection, frame: Frame) -> tuple[str, str]:
    """The internal topic of a client's topic name, after checking it may be read."""
    topic = frame.topic()
    if topic == "me":
        return f"me:{_login(conn, frame)}", topic
    kind, _, ident = topic.partition(":")
    if kind not in ("session", "farmer") or not ident or ":" in ident:
        raise FrameError(
            "invalid_field", "topic is session:{id}, farmer:{id} or me", "topic", frame.id
        )
    owner = await gateway.owner_of(topic)
    if kind == "farmer":
        user_id = _login(conn, frame)
        assert conn.principal is not None
        if owner != user_id and not conn.principal.is_admin:
            raise FrameError(
                "forbidden", "only this farmer or an admin may follow it", "topic", frame.id
            )
    return topic, topic


async def _subscribe(gateway: Gateway, conn: Connection, frame: Frame) -> None:
    since = frame.opt_int("since", 0, 2**62)
    topic, client_topic = await _resolve(gateway, conn, frame)
    if client_topic in conn.topics:
        gateway.hub.leave(conn, topic)  # a resubscribe with `since` starts over
        del conn.topics[client_topic]
    if len(conn.topics) >= limits.MAX_TOPICS_PER_SOCKET:
        raise FrameError(
            "too_many_topics",
            f"at most {limits.MAX_TOPICS_PER_SOCKET} topics per socket",
            "topic",
            frame.id,
        )
    conn.topics[client_topic] = topic
    try:
        await gateway.hub.join(conn, topic, client_topic, since, frame.id)
    except BaseException:
        conn.topics.pop(client_topic, None)
        raise


async def _unsubscribe(gateway: Gateway, conn: Connection, frame: Frame) -> None:
    client_topic = frame.topic()
    topic = conn.topics.pop(client_topic, None)
    if topic is None:
        raise FrameError("not_subscribed", "this socket is not subscribed to it", "topic")
    gateway.hub.leave(conn, topic)
    out: dict[str, Any] = {"type": "unsubscribed", "topic": client_topic}
    if frame.id is not None:
        out["id"] = frame.id
    conn.push_frame(orjson.dumps(out))


def _room(conn: Connection, frame: Frame) -> str:
    """The session topic a write goes to: one this socket is subscribed to."""
    topic = frame.topic()
    if not topic.startswith("session:"):
        raise FrameError("invalid_field", "only a session room takes this", "topic")
    if topic not in conn.topics:
        raise FrameError("not_subscribed", "subscribe to the room first", "topic")
    return topic


async def _chat(gateway: Gateway, conn: Connection, frame: Frame) -> None:
    user_id = _login(conn, frame)
    topic = _room(conn, frame)
    raw = frame.data.get("text")
    if not isinstance(raw, str) or not raw.strip():
        raise FrameError("invalid_field", "text must be a non-empty string", "text")
    text = raw.strip()
    if len(text) > limits.CHAT_MAX_CHARS:
        raise FrameError(
            "too_long", f"a chat line has at most {limits.CHAT_MAX_CHARS} characters", "text"
        )
    services = gateway.services
    principal = conn.principal
    assert principal is not None
    exempt = principal.is_admin or await gateway.owner_of(topic) == user_id
    try:
        seq, wait_ms = await chat.say(
            services,
            TopicKeys.of(services.keys, topic),
            topic,
            topic,
            user_id,
            conn.display_name or "",
            text,
            exempt=exempt,
        )
    except chat.RulesChanging:
        raise FrameError(
            "unavailable", "the room's chat rules are changing; send it again", None
        ) from None
    if seq < 0:
        raise _refused(seq, wait_ms)
    if frame.id is not None:
        conn.push_frame(orjson.dumps({"type": "ack", "id": frame.id, "seq": seq}))


def _refused(code: int, wait_ms: int) -> FrameError:
    """The error frame of a line the room's rules refused."""
    wait_s = max(1, -(-wait_ms // 1000))  # rounded up: trying at once again fails again
    if code == chat.MUTED:
        return FrameError("muted", "the host has muted you in this room", None)
    if code == chat.BANNED:
        return FrameError("banned", "the host has banned you from chatting in their rooms", None)
    if code == chat.BLOCKED_WORD:
        return FrameError("blocked_word", "the host does not allow a word in this line", "text")
    if code == chat.SLOW_MODE:
        return FrameError(
            "slow_mode",
            f"slow mode: wait {wait_s} s before your next line",
            None,
            details={"retry_after_s": wait_s},
        )
    if code == chat.RATE_LIMITED:
        return FrameError(
            "rate_limited",
            f"at most {limits.CHAT_LINES_PER_WINDOW} lines every {limits.CHAT_WINDOW_S} s",
            None,
            details={"retry_after_s": wait_s},
        )
    raise RuntimeError(f"the chat script answered {code}")


async def _like(gateway: Gateway, conn: Connection, frame: Frame) -> None:
    _login(conn, frame)
    topic = _room(conn, frame)
    count = frame.int_field("count", 1, limits.LIKES_PER_FRAME, default=1)
    if not conn.likes.take(count):
        raise FrameError(
            "rate_limited", f"at most {limits.LIKES_PER_SECOND} likes a second", "count"
        )
    services = gateway.services
    key = TopicKeys.of(services.keys, topic).likes
    async with services.redis.pipeline(transaction=False) as pipe:
        pipe.incrby(key, count)
        pipe.pexpire(key, 24 * 3600 * 1000)
        await pipe.execute()
    if gateway.on_like is not None:
        gateway.on_like(conn, topic, count)
    if frame.id is not None:
        conn.push_frame(orjson.dumps({"type": "ack", "id": frame.id}))


async def _moderate(gateway: Gateway, conn: Connection, frame: Frame) -> None:
    _login(conn, frame)
    assert conn.principal is not None
    topic = frame.topic()
    if not topic.startswith("session:"):
        raise FrameError("invalid_field", "only a session room is moderated", "topic")
    host = await gateway.owner_of(topic)
    if host != conn.principal.user_id and not conn.principal.is_admin:
        raise FrameError("forbidden", "only this session's host or an admin may moderate")
    action = frame.data.get("action")
    target = frame.str_field("target", 64)
    tk = TopicKeys.of(gateway.services.keys, topic)
    if action == "delete":
        if await chat.delete(gateway.services.redis, tk, topic, target) < 0:
            raise FrameError("not_found", "no recent chat line has that id", "target")
    elif action == "mute":
        await chat.mute(gateway.services.redis, tk, target)
    elif action == "unmute":
        await chat.unmute(gateway.services.redis, tk, target)
    else:
        raise FrameError("invalid_field", "action is delete, mute or unmute", "action")
    out: dict[str, Any] = {"type": "ack", "moderated": {"action": action, "target": target}}
    if frame.id is not None:
        out["id"] = frame.id
    conn.push_frame(orjson.dumps(out))


async def _order(gateway: Gateway, conn: Connection, frame: Frame) -> None:
    _login(conn, frame)
    assert conn.principal is not None
    try:
        body, key = order_frame(frame.data)
        async with asyncio.timeout(ORDER_TIMEOUT_S):
            order, _ = await place_order(gateway.services, conn.principal, body, key)
    except ApiError as err:
        raise FrameError.of(err) from None
    except TimeoutError:
        raise FrameError("timeout", "the order took too long; retry with the same key") from None
    conn.push_frame(orjson.dumps({"type": "ack", "id": frame.id, "order": order}))


async def _donate(gateway: Gateway, conn: Connection, frame: Frame) -> None:
    _login(conn, frame)
    assert conn.principal is not None
    try:
        body, key = gift_frame(frame.data)
        async with asyncio.timeout(ORDER_TIMEOUT_S):
            out, _ = await donate(gateway.services, conn.principal, body, key)
    except ApiError as err:
        raise FrameError.of(err) from None
    except TimeoutError:
        raise FrameError("timeout", "the donation took too long; retry with the same key") from None
    conn.push_frame(orjson.dumps({"type": "ack", "id": frame.id, **out}))


async def _ping(gateway: Gateway, conn: Connection, frame: Frame) -> None:
    conn.push_frame(PONG if frame.id is None else orjson.dumps({"type": "pong", "id": frame.id}))


HANDLERS = {
    "hello": _hello,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "chat": _chat,
    "like": _like,
    "moderate": _moderate,
    "order": _order,
    "donate": _donate,
    "ping": _ping,
}

PATH = "/ws"


async def serve(scope: Scope, receive: Receive, send: Send_) -> None:
    """The socket straight from the server, past the HTTP middleware and the route table:
    their coroutine frames would otherwise be held for the whole life of every socket
    (about 5 KB each, measured with tracemalloc), and none of them acts on a socket. A
    crash is logged as the app's handlers log one; the server then closes with 1011."""
    try:
        await endpoint(WebSocket(scope, receive, send))
    except Exception:
        log.exception("unhandled error", extra={"path": PATH})
        raise


routes = [WebSocketRoute(PATH, endpoint, name="ws")]  # for a server that routes the app
