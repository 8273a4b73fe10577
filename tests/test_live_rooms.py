"""Live rooms across two real `panen serve` processes, real WebSocket clients, real Redis."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets

from core.services import Services
from live import rooms
from tests.api import World, build_world, register
from tests.conftest import process_env
from tests.live_clients import Viewer, ticker_with
from tests.processes import Server


@pytest.fixture(scope="module")
def servers(settings: Any) -> Iterator[tuple[Server, Server]]:
    env = {**process_env(settings), "PANEN_TICKER_HZ": "10"}
    a, b = Server(env), Server(env)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        b.stop()
        a.stop()


@dataclass
class Room:
    world: World
    listing: dict[str, Any]
    topic: str
    http: httpx.AsyncClient


@pytest.fixture
async def room(servers: tuple[Server, Server], admin_token: str) -> AsyncIterator[Room]:
    async with httpx.AsyncClient(base_url=servers[0].base, timeout=20) as http:
        world = await build_world(http, admin_token)
        sid = world.session["id"]
        r = await http.post(
            f"/api/sessions/{sid}/listings",
            headers=world.host.headers,
            json={"product_id": world.product["id"], "price": 90_000, "stock": 40},
        )
        assert r.status_code == 201, r.text
        r = await http.post(f"/api/sessions/{sid}/start", headers=world.host.headers)
        assert r.status_code == 200, r.text
        yield Room(world, r.json() and (await _listing(http, sid)), f"session:{sid}", http)


async def _listing(http: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    r = await http.get(f"/api/sessions/{sid}")
    listing: dict[str, Any] = r.json()["listings"][0]
    return listing


async def test_a_host_pin_through_one_process_reaches_viewers_of_both_with_the_same_seq(
    servers: tuple[Server, Server], room: Room
) -> None:
    a, b = servers
    on_a = await Viewer.connect(a.ws)
    on_b = await Viewer.connect(b.ws)
    snap_a = await on_a.subscribe(room.topic)
    snap_b = await on_b.subscribe(room.topic)
    assert snap_a["type"] == snap_b["type"] == "subscribed"
    assert snap_a["recovered"] is False
    totals = snap_a["snapshot"]["totals"]
    assert totals["goal"]["unit_name"] == "Love Package"
    assert totals["charity"] == {"pledged": 0, "donated": 0, "matched": 0, "total": 0}

    r = await room.http.post(
        f"/api/sessions/{room.world.session['id']}/pin",
        headers=room.world.host.headers,
        json={"listing_id": room.listing["id"]},
    )
    assert r.status_code == 200, r.text
    got_a = await on_a.expect(ticker_with("pinned"))
    got_b = await on_b.expect(ticker_with("pinned"))
    assert got_a["seq"] == got_b["seq"]
    assert got_a == got_b  # one frame, built once, for every process
    assert got_a["totals"]["pinned"]["id"] == room.listing["id"]
    assert got_a["totals"]["pinned"]["remaining"] == 40
    # a viewer joining later sees the pinned card in its snapshot
    late = await Viewer.connect(b.ws)
    snap = await late.subscribe(room.topic)
    assert snap["snapshot"]["totals"]["pinned"]["id"] == room.listing["id"]
    assert snap["seq"] >= got_a["seq"]
    for v in (on_a, on_b, late):
        await v.close()


async def test_events_published_anywhere_fold_into_one_totals_frame_sequence(
    servers: tuple[Server, Server], room: Room, settings: Any
) -> None:
    from commerce.orders.events import OrderPaid
    from core.events import publish

    a, b = servers
    on_a = await Viewer.connect(a.ws)
    on_b = await Viewer.connect(b.ws)
    await on_a.subscribe(room.topic)
    await on_b.subscribe(room.topic)
    await on_a.expect(lambda f: f["type"] == "ticker")  # the room is live: viewers counted
    services = await Services.start(settings, pool_size=1, jobs=False)
    try:

        def paid(i: int) -> OrderPaid:
            return OrderPaid(
                order_id=f"ord_{i}",
                session_id=room.world.session["id"],
                listing_id=room.listing["id"],
                quantity=2,
                gross=180_000,
                pledge=9_000,
                currency="IDR",
                display_name="Sari",
                at="2099-01-01T00:00:00Z",
            )

        for i in range(30):
            await publish(services, room.topic, paid(i))
        # delivered at least once: a repeat of an order's event counts once
        await publish(services, room.topic, paid(0))
    finally:
        await services.close()

    async def until_all(v: Viewer) -> list[dict[str, Any]]:
        frames = []
        while True:
            f = await v.expect(lambda f: f["type"] == "ticker")
            frames.append(f)
            if f["totals"]["orders"] == 30:
                return frames

    frames_a = await until_all(on_a)
    frames_b = await until_all(on_b)
    paid_a = [e for f in frames_a for e in f["events"] if e["type"] == "order_paid"]
    # A frame lists the newest few sales and counts the rest; the totals count them all.
    left_out = sum(f.get("more", {}).get("order_paid", 0) for f in frames_a)
    assert len(paid_a) + left_out == 31  # 30 sales and the repeat, listed or counted
    assert all(
        sum(e["type"] == "order_paid" for e in f["events"]) <= rooms.SHOWN_PER_KIND
        for f in frames_a
    )
    assert "ord_29" in {e["order_id"] for e in paid_a}  # the newest is always shown
    assert len(frames_a) < 30  # coalesced: many events a frame
    last = frames_a[-1]
    assert last["totals"]["gross"] == 30 * 180_000
    assert last["totals"]["units_sold"] == {room.listing["id"]: 60}
    assert last["totals"]["charity"]["pledged"] == 30 * 9_000
    assert last["totals"]["goal"]["funded_units"] == (30 * 9_000) // 150_000
    seqs_a = [f["seq"] for f in frames_a]
    assert seqs_a == sorted(seqs_a)
    assert {f["seq"]: f for f in frames_b}[last["seq"]] == last
    await on_a.close()
    await on_b.close()


async def test_chat_crosses_processes_and_the_host_deletes_a_line_and_mutes_a_user(
    servers: tuple[Server, Server], room: Room
) -> None:
    a, b = servers
    viewer = await register(room.http, "chatty")
    speaker = await Viewer.connect(a.ws, viewer.token)
    listener = await Viewer.connect(b.ws)
    host = await Viewer.connect(b.ws, room.world.host.token)
    for v in (speaker, listener, host):
        await v.subscribe(room.topic)
    await speaker.send({"type": "chat", "topic": room.topic, "text": "  Segar sekali!  "})
    line = await listener.expect(lambda f: f["type"] == "chat")
    assert line["message"]["text"] == "Segar sekali!"
    assert line["message"]["user_id"] == viewer.id
    assert line["message"]["display_name"] == viewer.user["display_name"]
    mid = line["message"]["id"]

    await speaker.send({"type": "moderate", "topic": room.topic, "action": "delete", "target": mid})
    denied = await speaker.expect(lambda f: f["type"] == "error")
    assert denied["code"] == "forbidden"

    await host.send({"type": "moderate", "topic": room.topic, "action": "delete", "target": mid})
    gone = await listener.expect(lambda f: f["type"] == "chat_deleted")
    assert gone["message_id"] == mid and gone["seq"] > line["seq"]
    late = await Viewer.connect(a.ws)
    snap = await late.subscribe(room.topic)
    assert all(m["id"] != mid for m in snap["snapshot"]["chat"])

    await host.send(
        {"type": "moderate", "id": 7, "topic": room.topic, "action": "mute", "target": viewer.id}
    )
    ack = await host.expect(lambda f: f["type"] == "ack" and f.get("id") == 7)
    assert ack == {"type": "ack", "id": 7, "moderated": {"action": "mute", "target": viewer.id}}
    await speaker.send({"type": "chat", "topic": room.topic, "text": "halo?"})
    muted = await speaker.expect(lambda f: f["type"] == "error")
    assert muted["code"] == "muted"
    # The host changes their mind: unmuted, the viewer chats again.
    await host.send(
        {"type": "moderate", "id": 8, "topic": room.topic, "action": "unmute", "target": viewer.id}
    )
    await host.expect(lambda f: f["type"] == "ack" and f.get("id") == 8)
    await speaker.send({"type": "chat", "id": "c2", "topic": room.topic, "text": "terima kasih"})
    back = await speaker.expect(lambda f: f["type"] in ("ack", "error") and f.get("id") == "c2")
    assert back["type"] == "ack", back
    for v in (speaker, listener, host, late):
        await v.close()


async def test_chat_is_rate_limited_per_user_and_length_limited(
    servers: tuple[Server, Server], room: Room
) -> None:
    viewer = await register(room.http, "spam")
    v = await Viewer.connect(servers[0].ws, viewer.token)
    await v.subscribe(room.topic)
    await v.send({"type": "chat", "topic": room.topic, "text": "x" * 281})
    assert (await v.expect(lambda f: f["type"] == "error"))["code"] == "too_long"
    codes = []
    for i in range(7):
        await v.send({"type": "chat", "id": i, "topic": room.topic, "text": f"line {i}"})
        codes.append(await v.expect(lambda f: f["type"] in ("ack", "error")))
    assert [c["type"] for c in codes[:5]] == ["ack"] * 5
    assert codes[5]["code"] == "rate_limited"
    await v.close()


async def test_a_reconnect_with_since_recovers_exactly_the_missed_frames(
    servers: tuple[Server, Server], room: Room
) -> None:
    a, b = servers
    viewer = await register(room.http, "talk")
    talker = await Viewer.connect(a.ws, viewer.token)
    await talker.subscribe(room.topic)
    watcher = await Viewer.connect(b.ws)
    await watcher.subscribe(room.topic)
    await talker.send({"type": "chat", "topic": room.topic, "text": "before"})
    before = await watcher.expect(lambda f: f["type"] == "chat")
    await watcher.close()

    for text in ("one", "two", "three"):
        await talker.send({"type": "chat", "topic": room.topic, "text": text})
    third = await talker.expect(lambda f: f["type"] == "chat" and f["message"]["text"] == "three")

    back = await Viewer.connect(a.ws)  # the other process this time
    sub = await back.subscribe(room.topic, since=before["seq"])
    assert sub["recovered"] is True and "snapshot" not in sub
    missed = []
    while not missed or missed[-1]["seq"] < third["seq"]:
        missed.append(await back.recv())
    assert [f["seq"] for f in missed] == list(range(before["seq"] + 1, third["seq"] + 1))
    texts = [f["message"]["text"] for f in missed if f["type"] == "chat"]
    assert texts == ["one", "two", "three"]

    # a `since` the history no longer holds (or from the future) gets a fresh snapshot
    other = await Viewer.connect(b.ws)
    sub = await other.subscribe(room.topic, since=1)
    assert sub["recovered"] is False and "totals" in sub["snapshot"]
    assert [m["text"] for m in sub["snapshot"]["chat"]][-3:] == ["one", "two", "three"]
    # either kind of `subscribed` answers the subscribe frame by its id
    for since, sock in ((before["seq"], back), (None, other)):
        frame = {"type": "subscribe", "topic": room.topic, "id": "s9"}
        await sock.send(frame if since is None else {**frame, "since": since})
        sub = await sock.expect(lambda f: f["type"] == "subscribed")
        assert sub["id"] == "s9"
    for v in (talker, back, other):
        await v.close()


async def test_viewers_and_likes_are_counted_across_processes(
    servers: tuple[Server, Server], room: Room
) -> None:
    a, b = servers
    viewer = await register(room.http, "liker")
    liker = await Viewer.connect(a.ws, viewer.token)
    await liker.subscribe(room.topic)
    others = [await Viewer.connect(s.ws) for s in (a, b, b)]
    for v in others:
        await v.subscribe(room.topic)
    f = await liker.expect(lambda f: f["type"] == "ticker" and f["totals"]["viewers"] == 4)
    await liker.send({"type": "like", "topic": room.topic, "count": 3})
    await liker.send({"type": "like", "topic": room.topic, "count": 51})
    too_many = await liker.expect(lambda f: f["type"] == "error")
    assert too_many["field"] == "count"
    f = await others[2].expect(lambda f: f["type"] == "ticker" and f["totals"]["likes"] == 3)
    for v in others:
        await v.close()
    f = await liker.expect(lambda f: f["type"] == "ticker" and f["totals"]["viewers"] == 1)
    assert f["totals"]["likes"] == 3
    await liker.close()


async def test_garbage_oversized_and_unauthorised_frames_get_the_right_answers(
    servers: tuple[Server, Server], room: Room, admin_token: str
) -> None:
    a = servers[0]
    v = await Viewer.connect(a.ws)
    answers = {}
    for name, raw in {
        "garbage": "{nope",
        "not_object": "[1,2]",
        "no_type": '{"id":"x"}',
        "unknown": '{"type":"dance"}',
        "bad_since": orjson_str({"type": "subscribe", "topic": room.topic, "since": "x"}),
        "bad_topic": orjson_str({"type": "subscribe", "topic": "kitchen:1"}),
        "no_room": orjson_str({"type": "subscribe", "topic": "session:ses_nope"}),
        "anon_chat": orjson_str({"type": "chat", "topic": room.topic, "text": "hi"}),
        "anon_me": orjson_str({"type": "subscribe", "topic": "me"}),
        "bad_token": orjson_str({"type": "hello", "token": "abc"}),
        "donate": orjson_str({"type": "donate", "id": "d1", "amount": 5000}),
    }.items():
        await v.ws.send(raw)
        answers[name] = await v.expect(lambda f: f["type"] == "error")
    assert answers["garbage"]["code"] == "malformed_json"
    assert answers["not_object"]["code"] == "invalid_frame"
    assert answers["no_type"]["code"] == "missing_field"
    assert answers["unknown"]["code"] == "unknown_type"
    assert answers["bad_since"]["field"] == "since"
    assert answers["bad_topic"]["field"] == "topic"
    assert answers["no_room"]["code"] == "not_found"
    assert answers["anon_chat"]["code"] == "unauthorized"
    assert answers["anon_me"]["code"] == "unauthorized"
    assert answers["bad_token"]["code"] == "invalid_token"
    assert answers["donate"]["code"] == "unauthorized" and answers["donate"]["id"] == "d1"
    await v.send({"type": "ping", "id": "p1"})
    # the socket stayed open through all of it, and a reply names the frame it answers
    assert await v.recv() == {"type": "pong", "id": "p1"}

    # a farmer's live totals are that farmer's (or an admin's) only
    stranger = await register(room.http, "stranger")
    s = await Viewer.connect(a.ws, stranger.token)
    denied = await s.subscribe(f"farmer:{room.world.farmer_id}")
    assert denied["type"] == "error" and denied["code"] == "forbidden"
    farmer = await Viewer.connect(a.ws, room.world.farmer.token)
    ok = await farmer.subscribe(f"farmer:{room.world.farmer_id}")
    assert ok["type"] == "subscribed"
    admin = await Viewer.connect(a.ws, admin_token)
    assert (await admin.subscribe(f"farmer:{room.world.farmer_id}"))["type"] == "subscribed"
    me = await s.subscribe("me")
    assert me["type"] == "subscribed" and me["topic"] == "me"

    # a frame over the size limit closes the socket with 1009
    big = await Viewer.connect(a.ws)
    await big.send({"type": "chat", "topic": room.topic, "text": "x" * 5000})
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await big.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    # a flood of frames closes it with 1008
    flood = await Viewer.connect(a.ws)
    for _ in range(200):
        await flood.send({"type": "ping"})
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await flood.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    for c in (v, s, farmer, admin):
        await c.close()


async def test_a_user_over_the_connection_limit_is_closed_with_1008(
    servers: tuple[Server, Server], room: Room
) -> None:
    from live import limits

    viewer = await register(room.http, "many")
    sockets: list[Viewer] = []
    for i in range(limits.MAX_CONNECTIONS_PER_USER):
        sockets.append(await Viewer.connect(servers[i % 2].ws, viewer.token))
    extra = await Viewer.connect(servers[0].ws)
    await extra.send({"type": "hello", "token": viewer.token})
    refused = await extra.recv()
    assert refused["code"] == "too_many_connections"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await extra.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    await sockets.pop().close()
    await asyncio.sleep(0.2)
    again = await Viewer.connect(servers[1].ws, viewer.token)
    assert again.seen[-1]["type"] == "welcome"
    for s in (*sockets, again):
        await s.close()


async def test_a_client_that_stops_reading_is_dropped_while_others_keep_receiving(
    servers: tuple[Server, Server], room: Room, settings: Any
) -> None:
    from core.events import publish

    a = servers[0]
    healthy = await Viewer.connect(a.ws)
    await healthy.subscribe(room.topic)
    # A client that never reads, with a tiny receive buffer: its library stops reading
    # once one frame waits, the kernel buffer fills, and the server's queue overflows.
    raw = socket.create_connection(("127.0.0.1", a.port))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck = await Viewer.connect(a.ws, sock=raw, max_queue=1)
    await stuck.subscribe(room.topic)
    await healthy.expect(lambda f: f["type"] == "ticker" and f["totals"]["viewers"] == 2)
    services = await Services.start(settings, pool_size=1, jobs=False)
    seqs: list[int] = []
    try:
        big = "x" * 8000
        for _ in range(200):
            await asyncio.gather(
                *(
                    publish(services, room.topic, {"type": "donation", "display_name": big})
                    for _ in range(5)
                )
            )
            frame = await healthy.expect(lambda f: f["type"] == "ticker")
            seqs.append(frame["seq"])
            if frame["totals"]["viewers"] == 1:
                break
    finally:
        await services.close()
    assert frame["totals"]["viewers"] == 1, "the stuck client was never dropped"
    assert seqs == sorted(seqs)
    # the healthy viewer got every frame: no gap in its sequence
    ticker_seqs = [f["seq"] for f in healthy.seen if "seq" in f]
    assert ticker_seqs == list(range(ticker_seqs[0], ticker_seqs[-1] + 1))
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await stuck.recv(within=5)
    await healthy.close()


def orjson_str(frame: dict[str, Any]) -> str:
    import orjson

    return orjson.dumps(frame).decode()


async def test_an_order_frame_places_an_order_and_bad_or_unfillable_ones_get_error_frames(
    servers: tuple[Server, Server], room: Room
) -> None:
    buyer = await register(room.http, "buyer")
    v = await Viewer.connect(servers[1].ws, buyer.token)
    order = {
        "type": "order",
        "id": "c1",
        "listing_id": room.listing["id"],
        "quantity": 2,
        "idempotency_key": "key-1",
    }
    await v.send(order)
    first = await v.expect(lambda f: f.get("id") == "c1")
    assert first["type"] == "ack", first
    assert first["order"]["status"] == "reserved" and first["order"]["quantity"] == 2
    await v.send({**order, "id": "c2"})  # a retry with the same key: the same order
    again = await v.expect(lambda f: f.get("id") == "c2")
    assert again["type"] == "ack", again
    assert again["order"]["id"] == first["order"]["id"]
    await v.send({**order, "id": "c5", "quantity": 1})  # same key, another body
    reused = await v.expect(lambda f: f.get("id") == "c5")
    assert (reused["type"], reused["code"]) == ("error", "idempotency_key_reused")
    await v.send({**order, "id": "c3", "quantity": 0})
    bad = await v.expect(lambda f: f.get("id") == "c3")
    assert bad["type"] == "error" and bad["field"] == "quantity"
    await v.send({**order, "id": "c4", "quantity": 41, "idempotency_key": "key-2"})
    gone = await v.expect(lambda f: f.get("id") == "c4")
    assert gone["type"] == "error" and gone["code"] in ("sold_out", "limit_exceeded")
    # the same details as over HTTP: what is left, or the buyer's limit
    assert {"remaining", "max_per_buyer"} & set(gone["details"]), gone
    await v.close()


async def test_a_donate_frame_records_a_donation_and_answers_with_its_payment(
    servers: tuple[Server, Server], room: Room
) -> None:
    donor = await register(room.http, "donor")
    v = await Viewer.connect(servers[0].ws, donor.token)
    frame = {
        "type": "donate",
        "id": "d1",
        "charity_id": room.world.charity["id"],
        "session_id": room.world.session["id"],
        "amount": 50_000,
        "message": "Semangat!",
        "visibility": "first_name",
        "idempotency_key": "don-1",
    }
    await v.send(frame)
    ack = await v.expect(lambda f: f.get("id") == "d1")
    assert ack["type"] == "ack", ack
    assert ack["donation"]["amount"] == 50_000 and "payment" in ack
    await v.send({**frame, "id": "d2", "amount": -1, "idempotency_key": "don-2"})
    bad = await v.expect(lambda f: f.get("id") == "d2")
    assert bad["type"] == "error" and bad["field"] == "amount"
    await v.close()


async def test_get_session_carries_the_rooms_totals_snapshot(client, admin_token):
    world = await build_world(client, admin_token)
    sid = world.session["id"]
    r = await client.post(
        f"/api/sessions/{sid}/listings",
        headers=world.host.headers,
        json={"product_id": world.product["id"], "price": 90_000, "stock": 7},
    )
    listing = r.json()
    detail = (await client.get(f"/api/sessions/{sid}")).json()
    totals = detail["totals"]
    assert totals["orders"] == 0 and totals["gross"] == 0
    assert totals["charity"] == {"pledged": 0, "donated": 0, "matched": 0, "total": 0}
    assert totals["goal"]["unit_name"] == "Love Package"
    assert totals["goal"]["goal_units"] == 500
    assert detail["listings"][0]["id"] == listing["id"]


def _masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A client frame as it goes on the wire (a zero mask leaves the payload as it is)."""
    assert len(payload) < 126
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


async def _raw_socket(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def test_the_socket_layer_answers_what_a_browser_or_an_attacker_may_send(
    servers: tuple[Server, Server], room: Room
) -> None:
    a = servers[0]
    # a socket on a path no route takes is refused, as before
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(a.ws.replace("/ws", "/nope"))
    assert refused.value.response.status_code == 403

    # a message in fragments is one frame; a binary one is answered, and the socket stays
    v = await Viewer.connect(a.ws)
    await v.ws.send(['{"type": "ping", ', '"id": "frag"}'])
    assert await v.recv() == {"type": "pong", "id": "frag"}
    await v.ws.send(b'{"type": "ping"}')
    assert (await v.recv())["code"] == "invalid_frame"
    await v.ws.ping()  # the protocol's own ping is answered
    await v.send({"type": "ping", "id": "after"})
    assert await v.recv() == {"type": "pong", "id": "after"}
    await v.close()

    # text that is not UTF-8 closes the socket with 1007, the rest of the room untouched
    reader, writer = await _raw_socket(a)
    writer.write(_masked(0x1, b"\xff\xfe{}"))
    close = await asyncio.wait_for(reader.read(64), 5)
    assert close[0] == 0x88 and int.from_bytes(close[2:4], "big") == 1007
    writer.close()

    # a client that closes mid-message leaves nothing behind, and a server ping is a pong
    reader, writer = await _raw_socket(a)
    writer.write(_masked(0x1, b'{"type": ', fin=False))
    writer.write(_masked(0x9, b"hi"))
    pong = await asyncio.wait_for(reader.readexactly(4), 5)
    assert pong == b"\x8a\x02hi"
    writer.write(_masked(0x8, (1000).to_bytes(2, "big")))
    answer = await asyncio.wait_for(reader.read(64), 5)
    assert answer[0] == 0x88
    assert await asyncio.wait_for(reader.read(64), 5) == b""  # and the server hung up
    writer.close()
    watcher = await Viewer.connect(a.ws)
    await watcher.send({"type": "ping", "id": "still"})
    assert await watcher.recv() == {"type": "pong", "id": "still"}
    await watcher.close()


async def test_a_flood_of_protocol_pings_is_limited_like_any_frame(
    servers: tuple[Server, Server], room: Room
) -> None:
    reader, writer = await _raw_socket(servers[0])
    writer.write(b"".join(_masked(0x9, b"p") for _ in range(200)))
    seen = b""
    while b"\x88\x02" not in seen:  # pongs, then the close frame
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        assert chunk, seen[-40:]
        seen += chunk
    close = seen.rfind(b"\x88\x02")
    assert close >= 0 and int.from_bytes(seen[close + 2 : close + 4], "big") == 1008
    # and once closed, more pings get no answer
    writer.write(b"".join(_masked(0x9, b"p") for _ in range(50)))
    try:
        after = await asyncio.wait_for(reader.read(65536), 1)
    except TimeoutError:
        after = b""
    assert b"\x8a\x01p" not in after
    writer.close()

    # so do empty pongs, and empty fragments of a message never finished
    for flood in (
        b"".join(_masked(0xA, b"") for _ in range(500)),
        _masked(0x1, b'{"type": ', fin=False)
        + b"".join(_masked(0x0, b"", fin=False) for _ in range(500)),
    ):
        reader, writer = await _raw_socket(servers[0])
        writer.write(flood)
        closing = await asyncio.wait_for(reader.read(64), 5)
        assert closing[:2] == b"\x88\x02" and int.from_bytes(closing[2:4], "big") == 1008
        assert await asyncio.wait_for(reader.read(64), 5) == b""  # and it hung up
        writer.close()


async def test_sockets_that_leave_mid_hello_leave_no_count_behind(
    servers: tuple[Server, Server], room: Room
) -> None:
    from live import limits

    viewer = await register(room.http, "leaver")
    hello = orjson_str({"type": "hello", "token": viewer.token})
    for _ in range(3):
        gone = [
            await websockets.connect(servers[0].ws) for _ in range(limits.MAX_CONNECTIONS_PER_USER)
        ]
        for ws in gone:
            await ws.send(hello)
        for ws in gone:
            ws.transport.abort()  # no close, no waiting for the welcome
    await asyncio.sleep(1.0)
    stayed = [
        await Viewer.connect(servers[0].ws, viewer.token)
        for _ in range(limits.MAX_CONNECTIONS_PER_USER)
    ]
    assert all(v.seen[-1]["type"] == "welcome" for v in stayed)
    for v in stayed:
        await v.close()


async def test_a_socket_silent_after_a_ping_is_cut_off_and_one_that_answers_stays(settings):
    """Keepalive (PANEN_WS_PING_S, 1 s here): every socket is pinged once a cycle; one
    that sent nothing since the last ping is cut off at the next, one that answers (as
    every WebSocket client does) stays open."""
    server = Server({**process_env(settings), "PANEN_WS_PING_S": "1"}).start()
    try:
        live = await Viewer.connect(server.ws)  # the websockets client answers pings
        reader, writer = await _raw_socket(server)  # a peer that never answers
        opened = asyncio.get_running_loop().time()
        ping = await asyncio.wait_for(reader.readexactly(2), 5)
        assert ping == b"\x89\x00"  # a ping frame, no payload
        assert await asyncio.wait_for(reader.read(64), 5) == b""  # then cut off
        cut_after = asyncio.get_running_loop().time() - opened
        assert 0.9 < cut_after < 4, cut_after  # the next cycle, not before
        writer.close()
        await asyncio.sleep(3)  # three more cycles for the one that answers
        await live.send({"type": "ping", "id": "still"})
        assert await live.recv() == {"type": "pong", "id": "still"}
        await live.close()
    finally:
        server.stop()
