"""Paying through Midtrans, against `panen emulator` (a Midtrans written from its documented
requests, responses and notifications), with real `panen serve` and `panen worker`
processes: a QRIS and a virtual-account payment through the whole notification flow, a
forged and a contradicted notification refused, a duplicate applied once, refunds (through
the API, and by hand for a bank transfer), a late payment returned, the gateway away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from core.db import Database
from core.settings import Settings
from tests.api import auth, live_listing, order, register, user_with_roles
from tests.checks import assert_ledger_invariants
from tests.conftest import process_env
from tests.processes import Emulator, Server, Worker, free_port, running


@pytest.fixture(scope="module")
def gateway(settings: Settings) -> Iterator[tuple[Server, Emulator]]:
    port = free_port()
    emulator = Emulator(process_env(settings))
    env = {
        **process_env(settings),
        **emulator.settings_env(f"http://127.0.0.1:{port}"),
        "PANEN_PAYMENT_PROVIDERS": "midtrans,sandbox",
    }
    server = Server(env, port=port)
    with running(emulator, server, Worker(env)):
        yield server, emulator


@pytest.fixture
async def http(gateway: tuple[Server, Emulator]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway[0].base, timeout=30) as c:
        yield c


async def control(emulator: Emulator, action: str, **body: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(f"{emulator.base}/_emulator/{action}", json=body)
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer


async def placed_order(http: httpx.AsyncClient, admin_token: str, stock: int = 5) -> Any:
    world, listing = await live_listing(http, admin_token, stock=stock, pledge_bps=1000)
    buyer = await register(http)
    r = await order(http, buyer, listing["id"])
    assert r.status_code == 201, r.text
    placed = r.json()["order"]
    assert placed["payment"]["provider"] == "midtrans"  # the deployment's first
    return world, buyer, placed


async def open_checkout(http: httpx.AsyncClient, buyer: Any, placed: Any, method: str) -> Any:
    r = await http.post(
        f"/api/payments/{placed['payment']['id']}/checkout",
        headers=buyer.headers,
        json={"method": method},
    )
    assert r.status_code == 200, r.text
    return r.json()["checkout"]


async def status_of(http: httpx.AsyncClient, buyer: Any, order_id: str) -> tuple[str, str]:
    o = (await http.get(f"/api/orders/{order_id}", headers=buyer.headers)).json()["order"]
    return o["status"], o["payment"]["status"]


async def until(http: httpx.AsyncClient, buyer: Any, order_id: str, want: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if (await status_of(http, buyer, order_id))[0] == want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"order {order_id} never became {want}")


async def test_a_qris_payment_goes_through_snap_and_its_notification_to_settlement(
    gateway, http, admin_token, db: Database
) -> None:
    _, emulator = gateway
    _, buyer, placed = await placed_order(http, admin_token)
    page = await open_checkout(http, buyer, placed, "qris")
    assert page["provider"] == "midtrans" and page["method"] == "qris"
    assert page["redirect_url"].startswith(emulator.base + "/snap/")
    # The payer's page is the gateway's; the same method again is the same page.
    assert (await open_checkout(http, buyer, placed, "qris")) == page
    paid = await control(emulator, "pay", order_id=placed["payment"]["id"], channel="other_qris")
    assert paid["delivered"] == 200
    await until(http, buyer, placed["id"], "settled")
    async with db.reader() as s:
        method = await s.scalar(
            text("SELECT method FROM payments WHERE id = :p"), {"p": placed["payment"]["id"]}
        )
    assert method == "qris"
    await assert_ledger_invariants(db)


async def test_a_virtual_account_is_pending_until_paid_then_settles(
    gateway, http, admin_token
) -> None:
    _, emulator = gateway
    _, buyer, placed = await placed_order(http, admin_token)
    await open_checkout(http, buyer, placed, "bca_va")
    chose = await control(emulator, "choose", order_id=placed["payment"]["id"], channel="bca_va")
    assert chose["status"] == "pending" and chose["delivered"] == 200
    assert await status_of(http, buyer, placed["id"]) == ("reserved", "pending")
    assert (await control(emulator, "pay", order_id=placed["payment"]["id"]))["delivered"] == 200
    await until(http, buyer, placed["id"], "settled")


async def test_a_forged_or_contradicted_notification_is_refused_and_changes_nothing(
    gateway, http, admin_token
) -> None:
    _, emulator = gateway
    _, buyer, placed = await placed_order(http, admin_token)
    pid = placed["payment"]["id"]
    await open_checkout(http, buyer, placed, "bni_va")
    await control(emulator, "choose", order_id=pid, channel="bni_va")
    forged = await control(
        emulator, "notify", order_id=pid, transaction_status="settlement", forge=True
    )
    assert forged["delivered"] == 401
    # Signed with the right key, but the status API says the payment is still pending.
    claimed = await control(
        emulator, "notify", order_id=pid, transaction_status="settlement", contradict=True
    )
    assert claimed["delivered"] == 400
    assert await status_of(http, buyer, placed["id"]) == ("reserved", "pending")


async def test_a_notification_delivered_twice_applies_once(
    gateway, http, admin_token, db: Database
) -> None:
    _, emulator = gateway
    _, buyer, placed = await placed_order(http, admin_token)
    pid = placed["payment"]["id"]
    await open_checkout(http, buyer, placed, "gopay")
    assert (await control(emulator, "pay", order_id=pid, channel="gopay"))["delivered"] == 200
    again = await control(emulator, "notify", order_id=pid)
    assert again["delivered"] == 200
    await until(http, buyer, placed["id"], "settled")
    async with db.reader() as s:
        sales = await s.scalar(
            text("SELECT count(*) FROM ledger_transactions WHERE reference = :r"),
            {"r": f"sale:{placed['id']}"},
        )
    assert sales == 1


async def test_a_settled_qris_order_refunded_by_its_host_goes_back_through_the_refund_api(
    gateway, http, admin_token, db: Database
) -> None:
    _, emulator = gateway
    world, buyer, placed = await placed_order(http, admin_token)
    pid = placed["payment"]["id"]
    await open_checkout(http, buyer, placed, "qris")
    await control(emulator, "pay", order_id=pid, channel="other_qris")
    await until(http, buyer, placed["id"], "settled")
    r = await http.post(f"/api/orders/{placed['id']}/cancel", headers=world.host.headers)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 20
    while (await status_of(http, buyer, placed["id"]))[1] != "refunded":
        assert time.monotonic() < deadline, "the refund never completed"
        await asyncio.sleep(0.1)
    state = await control(emulator, "state", order_id=pid)
    assert state["status"] == "refund" and list(state["refunds"].values()) == [placed["total"]]
    await assert_ledger_invariants(db)


async def test_a_bank_transfer_refund_waits_for_an_operator_who_marks_it_done(
    gateway, http, admin_token, db: Database
) -> None:
    _, emulator = gateway
    world, buyer, placed = await placed_order(http, admin_token)
    pid = placed["payment"]["id"]
    await open_checkout(http, buyer, placed, "permata_va")
    await control(emulator, "pay", order_id=pid, channel="permata_va")
    await until(http, buyer, placed["id"], "settled")
    r = await http.post(f"/api/orders/{placed['id']}/cancel", headers=world.host.headers)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 20
    while True:
        waiting = (await http.get("/api/admin/refunds", headers=auth(admin_token))).json()
        if any(w["payment"]["id"] == pid for w in waiting["refunds"]):
            break
        assert time.monotonic() < deadline, "the refund was never handed to an operator"
        await asyncio.sleep(0.2)
    assert (await status_of(http, buyer, placed["id"]))[1] == "refunding"
    r = await http.post(f"/api/admin/payments/{pid}/refunded", headers=buyer.headers)
    assert r.status_code == 403
    r = await http.post(f"/api/admin/payments/{pid}/refunded", headers=auth(admin_token))
    assert r.status_code == 200 and r.json()["payment"]["status"] == "refunded"
    r = await http.post(f"/api/admin/payments/{pid}/refunded", headers=auth(admin_token))
    assert r.status_code == 409
    await assert_ledger_invariants(db)


async def test_money_that_lands_after_the_buyer_cancelled_goes_back(
    gateway, http, admin_token, db: Database
) -> None:
    _, emulator = gateway
    _, buyer, placed = await placed_order(http, admin_token)
    pid = placed["payment"]["id"]
    await open_checkout(http, buyer, placed, "shopeepay")
    r = await http.post(f"/api/orders/{placed['id']}/cancel", headers=buyer.headers)
    assert r.status_code == 200 and r.json()["order"]["status"] == "cancelled"
    assert (await control(emulator, "pay", order_id=pid, channel="shopeepay"))["delivered"] == 200
    deadline = time.monotonic() + 20
    while (await status_of(http, buyer, placed["id"]))[1] != "refunded":
        assert time.monotonic() < deadline, "the late payment was never returned"
        await asyncio.sleep(0.1)
    assert (await control(emulator, "state", order_id=pid))["status"] == "refund"
    await assert_ledger_invariants(db)


async def test_with_the_gateway_away_checkout_is_503_and_the_order_waits(
    gateway, http, admin_token
) -> None:
    _, emulator = gateway
    _, buyer, placed = await placed_order(http, admin_token)
    await control(emulator, "down", seconds=3)
    r = await http.post(
        f"/api/payments/{placed['payment']['id']}/checkout",
        headers=buyer.headers,
        json={"method": "qris"},
    )
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
    assert r.headers["retry-after"]
    assert await status_of(http, buyer, placed["id"]) == ("reserved", "pending")
    await asyncio.sleep(3.2)
    page = await open_checkout(http, buyer, placed, "qris")  # once it is back
    assert page["redirect_url"]


async def test_a_notification_met_while_the_status_api_is_away_is_answered_503_and_applied_later(
    gateway, http, admin_token
) -> None:
    _, emulator = gateway
    _, buyer, placed = await placed_order(http, admin_token)
    pid = placed["payment"]["id"]
    await open_checkout(http, buyer, placed, "qris")
    await control(emulator, "choose", order_id=pid, channel="other_qris")
    await control(emulator, "down", seconds=2)
    paid = await control(emulator, "pay", order_id=pid)
    assert paid["delivered"] == 503  # Midtrans retries a 503 later
    assert (await status_of(http, buyer, placed["id"]))[0] == "reserved"
    await asyncio.sleep(2.2)
    assert (await control(emulator, "notify", order_id=pid))["delivered"] == 200
    await until(http, buyer, placed["id"], "settled")


async def test_checkout_is_refused_for_someone_elses_payment_an_unknown_method_and_a_closed_order(
    gateway, http, admin_token
) -> None:
    _, buyer, placed = await placed_order(http, admin_token)
    pid = placed["payment"]["id"]
    stranger = await register(http)
    r = await http.post(
        f"/api/payments/{pid}/checkout", headers=stranger.headers, json={"method": "qris"}
    )
    assert r.status_code == 404
    r = await http.post(
        f"/api/payments/{pid}/checkout", headers=buyer.headers, json={"method": "bitcoin"}
    )
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "method"
    methods = (await http.get("/api/payments/methods")).json()["methods"]
    assert {"method": "qris", "provider": "midtrans"} in methods
    assert {"method": "sandbox", "provider": "sandbox"} in methods
    await http.post(f"/api/orders/{placed['id']}/cancel", headers=buyer.headers)
    r = await http.post(
        f"/api/payments/{pid}/checkout", headers=buyer.headers, json={"method": "qris"}
    )
    assert r.status_code == 409


async def test_a_sponsor_top_up_is_paid_through_the_same_checkout_and_credited_once(
    gateway, http, admin_token, db: Database
) -> None:
    _, emulator = gateway
    sponsor = await user_with_roles(http, admin_token, "sponsor")
    r = await http.post(
        "/api/sponsors/top-ups",
        headers={**sponsor.headers, "Idempotency-Key": "bank-desa-december"},
        json={"amount": 2_500_000},
    )
    assert r.status_code == 201, r.text
    payment = r.json()["payment"]
    assert payment["provider"] == "midtrans"
    await open_checkout(http, sponsor, {"payment": payment}, "bni_va")
    await control(emulator, "choose", order_id=payment["id"], channel="bni_va")
    paid = await control(emulator, "pay", order_id=payment["id"])
    assert paid["delivered"] == 200
    assert (await control(emulator, "notify", order_id=payment["id"]))["delivered"] == 200
    funds = (await http.get(f"/api/sponsors/{sponsor.id}/funds", headers=sponsor.headers)).json()
    assert funds["top_ups"][0]["status"] == "paid"
    assert funds["currencies"] == [
        {
            "currency": "IDR",
            "topped_up": 2_500_000,
            "matched": 0,
            "redeemed": 0,
            "balance": 2_500_000,
        }
    ]
    await assert_ledger_invariants(db)


async def test_a_viewer_chooses_qris_pays_on_the_gateways_page_and_comes_back_to_the_room(
    gateway, http, admin_token
) -> None:
    from playwright.async_api import expect

    from tests.pages import chromium, tab

    server, emulator = gateway
    world, listing = await live_listing(http, admin_token, stock=5)
    viewer = await register(http)
    async with chromium() as browser, tab(browser, server.base, viewer.token, viewer.user) as t:
        await t.page.goto(f"/sessions/{world.session['id']}")
        card = t.page.locator(".product").first
        await card.locator("button.buy").click()
        await t.page.locator("#confirm-buy").click()  # the sheet: price, shipping, to pay
        dialog = t.page.locator("#pay-dialog")
        await expect(dialog).to_be_visible()
        await expect(dialog.locator("button.method")).to_have_count(9)  # 8 of Midtrans, sandbox
        await dialog.get_by_role("button", name="QRIS").click()
        await t.page.wait_for_url(emulator.base + "/snap/**")
        await t.page.get_by_role("button", name="Pay").click()
        await t.page.wait_for_url(f"{server.base}/sessions/{world.session['id']}?order=*")
        await expect(t.page.locator("#toast")).to_contain_text("being checked")
        assert not [e for e in t.errors if emulator.base not in e]  # the gateway is not ours
    mine = (await http.get("/api/me/orders", headers=viewer.headers)).json()["orders"]
    [bought] = [o for o in mine if o["listing_id"] == listing["id"]]
    deadline = time.monotonic() + 20
    while (await status_of(http, viewer, bought["id"]))[0] != "settled":
        assert time.monotonic() < deadline, "the order paid on the gateway never settled"
        await asyncio.sleep(0.1)
