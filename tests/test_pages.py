"""The pages in a real headless Chromium, against real `panen serve` and `panen worker`."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.api import PASSWORD, Actor, World, build_world, handle, register
from tests.conftest import process_env
from tests.pages import DESKTOP, PHONE, Tab, chromium, tab
from tests.processes import Server, Worker, running

# Where screenshots go: docs/screenshots when asked (to refresh the docs), else a temp dir.
SHOTS = os.environ.get("PANEN_SCREENSHOTS")


@pytest.fixture(scope="module")
def env(settings):
    return process_env(settings)


@pytest.fixture(scope="module")
def server(env) -> Iterator[Server]:
    srv = Server(env)
    with running(srv, Worker(env)):
        yield srv


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


@pytest.fixture
async def http(server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base, timeout=20) as c:
        yield c


@pytest.fixture(scope="module")
async def world(server, admin_token) -> World:
    async with httpx.AsyncClient(base_url=server.base, timeout=20) as c:
        w = await build_world(c, admin_token)
        r = await c.post(
            f"/api/sessions/{w.session['id']}/listings",
            headers=w.host.headers,
            json={
                "product_id": w.product["id"],
                "price": 90_000,
                "stock": 50,
                "pledge_bps": 1000,
                "max_per_buyer": 5,
            },
        )
        assert r.status_code == 201, r.text
        w.session["listings"] = [r.json()]
        r = await c.post(f"/api/sessions/{w.session['id']}/start", headers=w.host.headers)
        assert r.status_code == 200, r.text
        return w


def page_paths(w: World) -> dict[str, tuple[str, Actor | None]]:
    sid = w.session["id"]
    return {
        "home": ("/", None),
        "login": ("/login", None),
        "room": (f"/sessions/{sid}", None),
        "host": (f"/host/sessions/{sid}", w.host),
        "farmer": (f"/farmer?id={w.farmer_id}", w.farmer),
        # "charity": waits for GET /api/charities/{id}/disbursements (issue 5)
        "verify": ("/verify", None),
    }


async def settle(t: Tab) -> None:
    await t.page.wait_for_load_state("networkidle")


async def test_every_page_loads_at_phone_and_desktop_width_without_console_errors(
    browser, server, world, tmp_path
):
    out = Path(SHOTS) if SHOTS else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    for name, (path, actor) in page_paths(world).items():
        for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            token = actor.token if actor else None
            user = actor.user if actor else None
            async with tab(browser, server.base, token, user, viewport) as t:
                await t.page.goto(path)
                await settle(t)
                await expect(t.page.locator("header.topbar")).to_be_visible()
                await t.page.screenshot(path=str(out / f"{name}-{label}.png"), full_page=False)
                assert t.errors == [], f"{name} at {label} width: {t.errors}"


async def test_registration_and_login_through_the_pages_show_the_user_and_keep_them_signed_in(
    browser, server
):
    h = handle("page")
    async with tab(browser, server.base) as t:
        await t.page.goto("/login#register")
        await t.page.fill("#reg-handle", h)
        await t.page.fill("#reg-name", "Sari <b>bold</b>")
        await t.page.fill("#reg-password", PASSWORD)
        await t.page.click("#register-form button[type=submit]")
        await t.page.wait_for_url(server.base + "/")
        await expect(t.page.locator("header .who")).to_have_text("Sari <b>bold</b>")
        await t.page.click("#logout")
        await expect(t.page.locator("header nav a", has_text="Log in")).to_be_visible()
        await t.page.goto("/login")
        await t.page.fill("#login-handle", h)
        await t.page.fill("#login-password", "wrong password!")
        await t.page.click("#login-form button[type=submit]")
        await expect(t.page.locator("#login-form .form-error")).to_contain_text(
            "invalid_credentials"
        )
        await t.page.fill("#login-password", PASSWORD)
        await t.page.click("#login-form button[type=submit]")
        await t.page.wait_for_url(server.base + "/")
        await expect(t.page.locator("header .who")).to_have_text("Sari <b>bold</b>")
        # A 401 answer to the wrong password is a console error by the browser's rules; the
        # pages themselves must add none.
        assert [e for e in t.errors if "401" not in e] == []


async def test_the_language_switch_turns_the_pages_into_indonesian_and_money_into_rupiah(
    browser, server, world
):
    async with tab(browser, server.base, lang="en") as t:
        await t.page.goto(f"/sessions/{world.session['id']}")
        await expect(t.page.locator("#donate-btn")).to_have_text("Donate")
        await t.page.select_option("#lang", "id")
        await expect(t.page.locator("#donate-btn")).to_have_text("Donasi")
        price = t.page.locator("#pinned .price, #listings .price").first
        await expect(price).to_have_text("Rp\u00a090.000")
        assert t.errors == []
        await t.page.reload()
        await expect(t.page.locator("#donate-btn")).to_have_text("Donasi")
        await expect(t.page.locator("html")).to_have_attribute("lang", "id")


async def test_a_logged_out_viewer_who_taps_buy_is_sent_to_login_and_back(browser, server, world):
    sid = world.session["id"]
    async with tab(browser, server.base) as t:
        await t.page.goto(f"/sessions/{sid}")
        await t.page.locator("button.buy").first.click()
        await t.page.wait_for_url(f"**/login?next=%2Fsessions%2F{sid}")
        viewer_handle = handle("back")
        await t.page.goto(f"/login?next=%2Fsessions%2F{sid}#register")
        await t.page.fill("#reg-handle", viewer_handle)
        await t.page.fill("#reg-name", "Back Again")
        await t.page.fill("#reg-password", PASSWORD)
        await t.page.click("#register-form button[type=submit]")
        await t.page.wait_for_url(f"**/sessions/{sid}")
        assert t.errors == []


async def live_world(base: str, admin_token: str, **listing: int) -> World:
    """A fresh live session with one listing (its own room, so totals start at zero)."""
    async with httpx.AsyncClient(base_url=base, timeout=20) as c:
        w = await build_world(c, admin_token)
        body = {"product_id": w.product["id"], "price": 150_000, "stock": 40, **listing}
        r = await c.post(
            f"/api/sessions/{w.session['id']}/listings", headers=w.host.headers, json=body
        )
        assert r.status_code == 201, r.text
        w.session["listings"] = [r.json()]
        r = await c.post(f"/api/sessions/{w.session['id']}/start", headers=w.host.headers)
        assert r.status_code == 200, r.text
        return w


async def buy_and_pay(base: str, buyer: Actor, listing_id: str, quantity: int) -> dict:
    async with httpx.AsyncClient(base_url=base, timeout=20) as c:
        r = await c.post(
            "/api/orders",
            headers={**buyer.headers, "Idempotency-Key": handle("k")},
            json={"listing_id": listing_id, "quantity": quantity},
        )
        assert r.status_code == 201, r.text
        order = r.json()["order"]
        r = await c.post(
            f"/api/payments/{order['payment']['id']}/sandbox/approve", headers=buyer.headers
        )
        assert r.status_code == 200, r.text
        return order


async def connected(t: Tab) -> None:
    await expect(t.page.locator("#conn")).to_have_attribute("data-state", "open")


async def test_a_viewer_buys_and_sees_the_ticker_the_charity_total_and_the_goal_move(
    browser, server, admin_token
):
    # 75,000 of each 150,000 sale is pledged: two units fund one 150,000 Love Package.
    w = await live_world(server.base, admin_token, pledge_per_unit=75_000)
    async with httpx.AsyncClient(base_url=server.base) as c:
        viewer = await register(c, "buyer")
    async with tab(browser, server.base, viewer.token, viewer.user) as t:
        await t.page.goto(f"/sessions/{w.session['id']}")
        await connected(t)
        await expect(t.page.locator("#goal")).to_contain_text("0 of 500 Love Package funded")
        await expect(t.page.locator("#charity-total")).to_have_text("IDR\u00a00")
        card = t.page.locator(".product", has_text="Kopi Arabika").first
        await card.locator("input.qty").fill("2")
        await card.locator("button.buy").click()
        await expect(t.page.locator("#toast")).to_contain_text("Payment received")
        name = viewer.user["display_name"]
        await expect(t.page.locator("#ticker li").first).to_have_text(
            f"{name} bought 2× Kopi Arabika", timeout=15_000
        )
        await expect(t.page.locator("#charity-total")).to_have_text("IDR\u00a0150,000")
        await expect(t.page.locator("#goal")).to_contain_text("1 of 500 Love Package funded")
        await expect(t.page.locator(".product .stock").first).to_have_text("38 left")
        assert t.errors == []


async def test_a_host_pins_a_product_and_starts_a_deal_and_the_viewer_sees_it_counting_down(
    browser, server, admin_token
):
    w = await live_world(server.base, admin_token, pledge_bps=500)
    sid = w.session["id"]
    async with (
        tab(browser, server.base, w.host.token, w.host.user, DESKTOP) as host,
        tab(browser, server.base) as viewer,
    ):
        await viewer.page.goto(f"/sessions/{sid}")
        await connected(viewer)
        await expect(viewer.page.locator("#pinned")).to_be_hidden()
        await host.page.goto(f"/host/sessions/{sid}")
        await connected(host)
        await host.page.locator("#listings button.pin").first.click()
        await expect(viewer.page.locator("#pinned")).to_contain_text("Kopi Arabika")
        await expect(viewer.page.locator("#pinned .stock")).to_have_text("40 left")
        await expect(viewer.page.locator("#ticker")).to_contain_text("Featured: Kopi Arabika")
        await host.page.fill("#d-price", "99000")
        await host.page.fill("#d-stock", "10")
        await host.page.fill("#d-countdown", "30")
        await host.page.fill("#d-duration", "120")
        await host.page.click("#deal-form button[type=submit]")
        deal = viewer.page.locator("#deal")
        await expect(deal).to_be_visible()
        await expect(viewer.page.locator("#deal-label")).to_have_text("Starts in")
        await expect(viewer.page.locator("#deal-price")).to_have_text("IDR\u00a099,000")
        countdown = viewer.page.locator("#deal-countdown")
        await expect(countdown).to_have_text(re.compile(r"^0:[0-3]\d$"))
        first = await countdown.text_content()
        await expect(countdown).not_to_have_text(first or "", timeout=3000)
        await expect(viewer.page.locator("#ticker")).to_contain_text("Flash deal: Kopi Arabika")
        assert viewer.errors == [] and host.errors == []


async def test_the_farmer_dashboard_updates_live_when_an_order_is_paid(
    browser, server, admin_token
):
    w = await live_world(server.base, admin_token, pledge_bps=1000)
    async with httpx.AsyncClient(base_url=server.base) as c:
        buyer = await register(c, "buyer")
    async with tab(browser, server.base, w.farmer.token, w.farmer.user, DESKTOP) as t:
        await t.page.goto(f"/farmer?id={w.farmer_id}")
        await connected(t)
        await expect(t.page.locator("#f-units")).to_have_text("0")
        await buy_and_pay(server.base, buyer, w.session["listings"][0]["id"], 3)
        await expect(t.page.locator("#f-units")).to_have_text("3", timeout=15_000)
        await expect(t.page.locator("#f-gross")).to_have_text("IDR\u00a0450,000")
        await expect(t.page.locator("#f-pledged")).to_have_text("IDR\u00a045,000")
        await expect(t.page.locator("#chart canvas")).to_have_count(1)  # uPlot drew the chart
        assert t.errors == []


async def test_a_chat_line_of_script_is_shown_as_text_and_the_host_can_delete_it(
    browser, server, admin_token
):
    w = await live_world(server.base, admin_token)
    sid = w.session["id"]
    evil = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    async with httpx.AsyncClient(base_url=server.base) as c:
        author = await register(c, "chatty")
    async with (
        tab(browser, server.base, author.token, author.user) as writer,
        tab(browser, server.base, w.host.token, w.host.user, DESKTOP) as host,
        tab(browser, server.base) as reader,
    ):
        for t, path in (
            (writer, f"/sessions/{sid}"),
            (reader, f"/sessions/{sid}"),
            (host, f"/host/sessions/{sid}"),
        ):
            await t.page.goto(path)
            await connected(t)
        await writer.page.fill("#chat-input", evil)
        await writer.page.click("#chat-form button[type=submit]")
        line = reader.page.locator("#chat .chat-text")
        await expect(line).to_have_text(evil)
        assert await reader.page.evaluate("window.pwned") is None
        assert await reader.page.locator("#chat img, #chat script").count() == 0
        await expect(host.page.locator("#chat .chat-text")).to_have_text(evil)
        await host.page.locator("#chat button", has_text="Delete").click()
        await expect(line).to_have_count(0)
        assert reader.errors == [] and writer.errors == [] and host.errors == []


async def test_the_room_reconnects_after_the_server_restarts_and_shows_no_stale_total(
    browser, server, env, admin_token
):
    w = await live_world(server.base, admin_token, pledge_per_unit=75_000)
    own = Server(env)
    own.start()
    try:
        async with httpx.AsyncClient(base_url=server.base) as c:
            buyer = await register(c, "buyer")
        async with tab(browser, own.base) as t:
            await t.page.goto(f"/sessions/{w.session['id']}")
            await connected(t)
            await buy_and_pay(server.base, buyer, w.session["listings"][0]["id"], 1)
            await expect(t.page.locator("#charity-total")).to_have_text("IDR\u00a075,000")
            own.stop()
            await expect(t.page.locator("#conn")).to_have_attribute("data-state", "closed")
            await expect(t.page.locator("#charity-card")).to_have_class(re.compile("stale"))
            # Sold while this page's server is down: the page must catch up on its own.
            await buy_and_pay(server.base, buyer, w.session["listings"][0]["id"], 1)
            own.start()
            await connected(t)
            await expect(t.page.locator("#charity-total")).to_have_text(
                "IDR\u00a0150,000", timeout=15_000
            )
            await expect(t.page.locator("#charity-card")).not_to_have_class(re.compile("stale"))
            await expect(t.page.locator("#goal")).to_contain_text("1 of 500")
            # The browser reports the refused reconnects; nothing else may appear.
            unexpected = [
                e
                for e in t.errors
                if "WebSocket connection" not in e and "ERR_CONNECTION_REFUSED" not in e
            ]
            assert unexpected == []
    finally:
        own.stop()
