"""Limits that hold across processes, against a client that pushes them: guesses at one
handle, logins and registrations from one address, sockets from one address."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import websockets

from core.settings import Settings
from tests.api import PASSWORD, handle, login, register
from tests.conftest import process_env
from tests.live_clients import Viewer
from tests.processes import Server, running

LIMITED = {
    "PANEN_LOGINS_PER_ADDRESS": "30",
    "PANEN_REGISTRATIONS_PER_ADDRESS": "3",
    "PANEN_SOCKETS_PER_ADDRESS": "3",
}


@pytest.fixture(scope="module")
def pair(settings: Settings) -> Iterator[tuple[Server, Server]]:
    env = {**process_env(settings), **LIMITED}
    a, b = Server(env), Server(env)
    with running(a, b):
        yield a, b


async def test_a_burst_of_guesses_over_two_processes_gets_ten_checks_and_no_more(
    pair, client
) -> None:
    victim = await register(client)  # registered in-process: no address limit there
    a, b = pair
    async with httpx.AsyncClient(timeout=30) as http:

        async def guess(i: int) -> int:
            r = await http.post(
                f"{(a, b)[i % 2].base}/api/auth/login",
                json={"handle": victim.user["handle"], "password": f"guess number {i}"},
            )
            return r.status_code

        codes = Counter(await asyncio.gather(*(guess(i) for i in range(25))))
        assert codes[401] <= 10 and codes[429] >= 15, codes
        # The right password now waits out the window like any other attempt.
        r = await http.post(
            f"{a.base}/api/auth/login",
            json={"handle": victim.user["handle"], "password": PASSWORD},
        )
        assert r.status_code == 429 and r.headers["retry-after"]


async def test_one_address_registers_only_so_many_accounts_an_hour(pair) -> None:
    a, b = pair
    async with httpx.AsyncClient(timeout=30) as http:
        codes = []
        for i in range(4):
            r = await http.post(
                f"{(a, b)[i % 2].base}/api/auth/register",
                json={"handle": handle("reg"), "password": PASSWORD, "display_name": "R"},
            )
            codes.append(r.status_code)
    assert codes == [201, 201, 201, 429]


async def test_one_address_opens_only_so_many_sockets_across_processes(pair) -> None:
    a, b = pair
    held = [await Viewer.connect(server.ws) for server in (a, b, a)]
    extra = await Viewer.connect(b.ws)
    refused = await extra.recv()
    assert refused["type"] == "error" and refused["code"] == "too_many_connections"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await extra.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    await held.pop().close()
    await asyncio.sleep(0.3)
    again = await Viewer.connect(b.ws)
    await again.send({"type": "ping"})
    assert (await again.recv())["type"] == "pong"
    # Behind a trusted proxy (loopback is one by default) the address is the one it names,
    # as for HTTP requests: this socket is another address's.
    proxied = await Viewer.connect(a.ws, additional_headers={"X-Forwarded-For": "203.0.113.7"})
    await proxied.send({"type": "ping"})
    assert (await proxied.recv())["type"] == "pong"
    for v in (*held, again, proxied):
        await v.close()


async def test_a_session_ended_through_one_process_takes_no_order_on_another(
    pair, client, admin_token
) -> None:
    from tests.api import live_listing, order

    a, b = pair
    world, listing = await live_listing(client, admin_token, stock=10)
    buyer = await register(client)
    async with httpx.AsyncClient(timeout=30) as http:
        ok = await order(http_on(http, b), buyer, listing["id"])  # B has the offers cached
        assert ok.status_code == 201, ok.text
        r = await http.post(
            f"{a.base}/api/sessions/{world.session['id']}/end", headers=world.host.headers
        )
        assert r.status_code == 200
        late = await order(http_on(http, b), buyer, listing["id"])
        assert late.status_code == 409 and late.json()["error"]["code"] == "session_not_live"


def http_on(http: httpx.AsyncClient, server: Server) -> httpx.AsyncClient:
    http.base_url = httpx.URL(server.base)
    return http


async def test_a_burst_of_sockets_at_once_over_two_processes_never_passes_the_limit(pair) -> None:
    a, b = pair
    viewers = await asyncio.gather(*(Viewer.connect((a, b)[i % 2].ws) for i in range(12)))

    async def answer(v: Viewer) -> str:
        try:
            await v.send({"type": "ping"})
            return str((await v.recv())["type"])
        except websockets.ConnectionClosed:
            return "closed"
        except TimeoutError:
            return "silent"

    answers = Counter(await asyncio.gather(*(answer(v) for v in viewers)))
    assert answers["pong"] <= 3, answers
    for v in viewers:
        await v.close()


async def test_a_socket_whose_token_was_revoked_is_closed_at_its_next_frame(pair, client) -> None:
    a, b = pair
    await asyncio.sleep(0.5)  # the sockets of the tests before are let go
    me = await register(client)  # in-process: this module's address is out of registrations
    sock = await Viewer.connect(b.ws, token=me.token)
    await sock.send({"type": "subscribe", "topic": "me"})
    assert (await sock.recv())["type"] == "subscribed"
    async with httpx.AsyncClient(base_url=a.base, timeout=30) as http:
        r = await http.post("/api/auth/logout", headers=me.headers)
        assert r.status_code in (200, 204)
    await asyncio.sleep(5.5)  # identity.FRESH_S: how stale another process may be
    await sock.send({"type": "ping"})
    refused = await sock.expect(lambda f: f["type"] in ("error", "pong"))
    assert refused["type"] == "error" and refused["code"] == "token_revoked"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await sock.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_a_revoked_socket_cannot_log_in_again_with_a_fresh_token(pair, client) -> None:
    _, b = pair
    await asyncio.sleep(0.5)
    me = await register(client)
    sock = await Viewer.connect(b.ws, token=me.token)
    r = await client.post("/api/auth/logout", headers=me.headers)
    assert r.status_code == 200
    await asyncio.sleep(0.01)  # a token issued after the logout
    fresh = await login(client, me.user["handle"])
    await asyncio.sleep(5.5)
    await sock.send({"type": "hello", "token": fresh.token})
    refused = await sock.expect(lambda f: f["type"] in ("error", "welcome"))
    assert refused["type"] == "error" and refused["code"] == "token_revoked"
    with pytest.raises(websockets.ConnectionClosed):
        await sock.recv()
    again = await Viewer.connect(b.ws, token=fresh.token)  # a new socket with it is welcome
    await again.send({"type": "ping", "id": "p"})
    assert (await again.expect(lambda f: f["type"] == "pong"))["id"] == "p"
    await again.close()
