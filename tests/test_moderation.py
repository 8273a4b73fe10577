"""Donor messages before the room sees them: held back until the host approves when the
session asks for it, and, once hidden, gone from every frame a client can replay."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api import build_world, donate, donate_and_pay, register
from tests.conftest import process_env
from tests.live_clients import Viewer, ticker_with
from tests.processes import Server, running


@pytest.fixture(scope="module")
def server(settings: Any) -> Iterator[Server]:
    srv = Server({**process_env(settings), "PANEN_TICKER_HZ": "10"})
    with running(srv):
        yield srv


async def live_room(http: httpx.AsyncClient, admin_token: str, moderated: bool) -> Any:
    world = await build_world(http, admin_token)
    if moderated:  # a session of its own that holds messages back
        r = await http.post(
            "/api/sessions",
            headers=world.host.headers,
            json={
                "title": "Dengan moderasi",
                "charity_id": world.charity["id"],
                "currency": "IDR",
                "moderate_messages": True,
            },
        )
        assert r.status_code == 201 and r.json()["moderate_messages"] is True, r.text
        world.session = r.json()
    r = await http.post(f"/api/sessions/{world.session['id']}/start", headers=world.host.headers)
    assert r.status_code == 200, r.text
    return world


def donations_in(frame: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in frame.get("events", []) if e["type"] in ("donation", "donation_message")]


async def test_a_held_back_message_reaches_the_room_only_once_the_host_approves(
    server: Server, admin_token: str
) -> None:
    async with httpx.AsyncClient(base_url=server.base, timeout=20) as http:
        world = await live_room(http, admin_token, moderated=True)
        viewer = await Viewer.connect(server.ws)
        await viewer.subscribe(f"session:{world.session['id']}")
        donor = await register(http)
        gift = await donate_and_pay(http, donor, world, 20_000, message="Untuk adik-adik")
        frame = await viewer.expect(ticker_with("donation"))
        [shown] = donations_in(frame)
        assert shown["amount"] == 20_000 and "message" not in shown
        queue = await http.get(
            f"/api/sessions/{world.session['id']}/donation-messages", headers=world.host.headers
        )
        assert [m["message"] for m in queue.json()["messages"]] == ["Untuk adik-adik"]
        r = await http.post(
            f"/api/donations/{gift['id']}/message",
            headers=world.host.headers,
            json={"action": "approve"},
        )
        assert r.status_code == 200
        frame = await viewer.expect(ticker_with("donation_message"))
        [approved] = donations_in(frame)
        assert (approved["donation_id"], approved["message"]) == (gift["id"], "Untuk adik-adik")
        await viewer.close()


async def test_a_hidden_message_is_gone_from_the_replay_of_a_resubscribing_client(
    server: Server, admin_token: str
) -> None:
    async with httpx.AsyncClient(base_url=server.base, timeout=20) as http:
        world = await live_room(http, admin_token, moderated=False)
        topic = f"session:{world.session['id']}"
        viewer = await Viewer.connect(server.ws)
        joined = await viewer.subscribe(topic)
        donor = await register(http)
        gift = await donate_and_pay(http, donor, world, 15_000, message="iklan judi online")
        frame = await viewer.expect(ticker_with("donation"))
        assert donations_in(frame)[0]["message"] == "iklan judi online"
        r = await http.post(
            f"/api/donations/{gift['id']}/message",
            headers=world.host.headers,
            json={"action": "hide"},
        )
        assert r.status_code == 200
        await viewer.expect(ticker_with("message_hidden"))
        # A client that reconnects asking for everything since it joined gets the frames
        # again: the gift is there, its message is not.
        again = await Viewer.connect(server.ws)
        await again.send({"type": "subscribe", "topic": topic, "since": joined["seq"]})
        replay = await again.expect(lambda f: f["type"] == "subscribed")
        assert replay["recovered"] is True
        frames = []
        while not any(e["type"] == "message_hidden" for f in frames for e in f.get("events", [])):
            frames.append(await again.recv())
        gifts = [e for f in frames for e in donations_in(f) if e["donation_id"] == gift["id"]]
        assert gifts and all("message" not in e for e in gifts)
        for v in (viewer, again):
            await v.close()


async def moderate(http: httpx.AsyncClient, world: Any, gift_id: str, action: str) -> None:
    r = await http.post(
        f"/api/donations/{gift_id}/message", headers=world.host.headers, json={"action": action}
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("moderated", "action", "shown"),
    [(False, "hide", False), (True, "approve", True), (True, "hide", False)],
)
async def test_a_decision_taken_before_the_gift_is_paid_holds_when_it_is_paid(
    server: Server, admin_token: str, moderated: bool, action: str, shown: bool
) -> None:
    async with httpx.AsyncClient(base_url=server.base, timeout=20) as http:
        world = await live_room(http, admin_token, moderated=moderated)
        viewer = await Viewer.connect(server.ws)
        await viewer.subscribe(f"session:{world.session['id']}")
        donor = await register(http)
        r = await donate(http, donor, world, 10_000, message="pesan awal")
        assert r.status_code == 201, r.text
        placed = r.json()
        await moderate(http, world, placed["donation"]["id"], action)
        r = await http.post(
            f"/api/payments/{placed['payment']['id']}/sandbox/approve", headers=donor.headers
        )
        assert r.status_code == 200, r.text
        [paid] = donations_in(await viewer.expect(ticker_with("donation")))
        assert paid.get("message") == ("pesan awal" if shown else None)
        await viewer.close()


async def test_a_hidden_message_approved_again_is_shown_again(
    server: Server, admin_token: str
) -> None:
    async with httpx.AsyncClient(base_url=server.base, timeout=20) as http:
        world = await live_room(http, admin_token, moderated=False)
        viewer = await Viewer.connect(server.ws)
        await viewer.subscribe(f"session:{world.session['id']}")
        donor = await register(http)
        gift = await donate_and_pay(http, donor, world, 12_000, message="maaf, salah tekan")
        await viewer.expect(ticker_with("donation"))
        await moderate(http, world, gift["id"], "hide")
        await viewer.expect(ticker_with("message_hidden"))
        await moderate(http, world, gift["id"], "hide")  # twice: the room hears it once
        r = await http.post(
            f"/api/donations/{gift['id']}/message",
            headers=world.host.headers,
            json={"action": "read"},
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "message_hidden"
        await moderate(http, world, gift["id"], "approve")
        frame = await viewer.expect(ticker_with("donation_message"))
        assert not any(e["type"] == "message_hidden" for e in frame["events"])
        [again] = donations_in(frame)
        assert again["message"] == "maaf, salah tekan"
        await viewer.close()
