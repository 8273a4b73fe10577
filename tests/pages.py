"""Headless Chromium (Debian's, through Playwright) for the page tests."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

CHROMIUM = os.environ.get("PANEN_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def require_chromium() -> None:
    """Page tests need Debian's chromium. CI (PANEN_REQUIRE_BROWSER=1) fails without it; a
    developer's machine without it skips the page tests, named in the summary."""
    if Path(CHROMIUM).exists():
        return
    message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    if os.environ.get("PANEN_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Tab:
    """A page with everything it said on its console and every uncaught error."""

    page: Page
    context: BrowserContext
    errors: list[str] = field(default_factory=list)

    def watch(self) -> None:
        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                self.errors.append(f"console: {msg.text} @ {msg.location.get('url', '')}")

        self.page.on("console", on_console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))


@asynccontextmanager
async def tab(
    browser: Browser,
    base: str,
    token: str | None = None,
    user: dict[str, Any] | None = None,
    viewport: dict[str, int] = PHONE,
    lang: str = "en",
) -> AsyncIterator[Tab]:
    context = await browser.new_context(viewport=viewport, base_url=base)  # type: ignore[arg-type]
    # Signed in the way the login page leaves a browser: token and user in localStorage.
    init = f"localStorage.setItem('panen.lang', {json.dumps(lang)});"
    if token:
        init += f"localStorage.setItem('panen.token', {json.dumps(token)});"
        init += f"localStorage.setItem('panen.user', {json.dumps(json.dumps(user or {}))});"
    await context.add_init_script(
        script=f"if (!sessionStorage.getItem('seeded')) {{ {init} "
        "sessionStorage.setItem('seeded', '1'); }"
    )
    page = await context.new_page()
    t = Tab(page, context)
    t.watch()
    try:
        yield t
    finally:
        await context.close()
