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
from tests.api import PASSWORD, handle, register
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
    for v in (*held, again):
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
