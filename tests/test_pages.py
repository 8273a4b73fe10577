"""The pages in a real headless Chromium, against real `panen serve` and `panen worker`."""

from __future__ import annotations

import os
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


_ = register  # used by later tests
