"""Packing list: a farmer's session of N orders, as JSON, as CSV, and as the printable page.

A fresh database (migrated to head) gets one live session whose N settled orders (five
products, a fifth of the buyers with two orders) are boxed by the real settlement code
(`commerce.shipping.service.box`). Then, in this one run:

- `describe ×box` (the baseline): each box read on its own, as a page that asked for each
  parcel would (`GET /api/shipments/{id}`'s query, once per box);
- `JSON` and `CSV`: `GET /api/farmers/{id}/packing-list` and `.csv` through the app;
- `page`: `/farmer/packing` in headless Chromium against a real `panen serve`, from
  navigation until every box is on the screen (skipped without Debian's chromium).

    .venv/bin/python bench/packing_list.py [--orders 500] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
from flash_sale import (  # bench/ sibling
    add_listing,
    fresh_deployment,
    make_buyers,
    seed_session,
)
from sqlalchemy import select

from commerce.orders.models import Order
from commerce.orders.pricing import split
from commerce.shipping import service as shipping
from commerce.shipping.models import Address, Shipment
from core.auth import Tokens
from core.clock import utcnow
from core.db import Database
from core.ids import new_id
from core.settings import Settings
from panen.app import create_app

CHROMIUM = "/usr/bin/chromium"
PAGE = "page in Chromium (390 px)"
Results = dict[str, list[float]]


async def seed(db: Database, n_orders: int) -> dict[str, Any]:
    world = await seed_session(db)
    listings = [await add_listing(db, world, 10_000) for _ in range(5)]
    n_buyers = n_orders * 5 // 6  # a fifth of them buy twice
    buyers = await make_buyers(db, n_buyers)
    now = utcnow()
    orders = []
    for i in range(n_orders):
        listing = listings[i % len(listings)]
        quantity = 1 + i % 4
        parts = split(95_000 * quantity, quantity, 1000, 0, 500)
        orders.append(
            Order(
                id=new_id("ord"),
                session_id=world["session"],
                listing_id=listing,
                inventory_id=listing,
                buyer_id=buyers[i % n_buyers],
                farmer_id=world["farmer"],
                charity_id=world["charity"],
                idempotency_key=secrets.token_hex(8),
                quantity=quantity,
                unit_price=95_000,
                total=95_000 * quantity,
                pledge_amount=parts.pledge,
                fee_amount=parts.fee,
                farmer_amount=parts.farmer,
                currency="IDR",
                status="settled",
                expires_at=now + timedelta(minutes=10),
                paid_at=now,
                settled_at=now,
                weight_g=300 * quantity,
                shipping_fee=15_000 if i < n_buyers else 0,
            )
        )
    async with db.transaction() as s:
        addresses = dict(
            (
                await s.execute(
                    select(Address.user_id, Address.id).where(Address.user_id.in_(buyers))
                )
            ).all()
        )
        for o in orders:
            o.address_id = addresses[o.buyer_id]
        s.add_all(orders)
        await s.flush()
        await shipping.box(s, orders, now)
    async with db.reader() as s:
        boxes = list(
            await s.scalars(select(Shipment.id).where(Shipment.session_id == world["session"]))
        )
    return {**world, "boxes": boxes}


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


async def timed(runs: int, work: Any) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await work()
        out.append(time.perf_counter() - t0)
    return out


async def api_runs(settings: Settings, world: dict[str, Any], runs: int) -> Results:
    app = create_app(settings)
    token = Tokens(settings.secret_key, 3600).issue(world["user"], ["farmer"])
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/api/farmers/{world['farmer']}/packing-list"
    query = f"?session_id={world['session']}"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as c:
            services = app.state.services

            async def per_box() -> None:
                async with services.db.reader() as s:
                    for box_id in world["boxes"]:
                        box = await s.get(Shipment, box_id)
                        assert box is not None
                        await shipping.describe(s, [box], 0, history=True)

            async def as_json() -> None:
                r = await c.get(path + query, headers=headers)
                assert r.status_code == 200 and r.json()["boxes"] == len(world["boxes"]), r.text

            async def as_csv() -> None:
                r = await c.get(path + ".csv" + query, headers=headers)
                assert r.status_code == 200 and r.text.count("\r\n") > len(world["boxes"])

            await as_json()  # warm
            return {
                "describe ×box (baseline)": await timed(max(3, runs // 5), per_box),
                "JSON": await timed(runs, as_json),
                "CSV": await timed(runs, as_csv),
            }


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """A real `panen serve` on this run's database; yields its address."""
    port = 18000 + secrets.randbelow(2000)
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "PANEN_SECRET_KEY": settings.secret_key,
        "PANEN_ENV": "development",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "panen", "serve", "--port", str(port)], env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(10)


async def page_runs(base: str, settings: Settings, world: dict[str, Any], runs: int) -> list[float]:
    from playwright.async_api import async_playwright

    token = Tokens(settings.secret_key, 3600).issue(world["user"], ["farmer"])
    user = {"id": world["user"], "display_name": "Bench", "roles": ["farmer"]}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM)
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        await context.add_init_script(
            script=f"localStorage.setItem('panen.token', {json.dumps(token)});"
            f"localStorage.setItem('panen.user', {json.dumps(json.dumps(user))});"
        )
        page = await context.new_page()
        url = f"{base}/farmer/packing?session_id={world['session']}"
        n = len(world["boxes"])

        async def render() -> None:
            await page.goto(url)
            # The boxes are drawn at once; the last one there means all are.
            await page.locator("article.box").nth(n - 1).wait_for(timeout=30_000)

        await render()  # warm: the modules are cached after this
        samples = await timed(max(3, runs // 3), render)
        await browser.close()
        return samples


async def prepare(settings: Settings, n_orders: int, runs: int) -> tuple[dict[str, Any], Results]:
    db = Database(settings.database_url, pool_size=4)
    try:
        world = await seed(db, n_orders)
    finally:
        await db.close()
    return world, await api_runs(settings, world, runs)


def report(results: Results, n_orders: int, boxes: int, runs: int) -> None:
    print(f"{n_orders} settled orders in {boxes} boxes, {runs} runs each\n")
    base_median, _ = stats(results["describe ×box (baseline)"])
    print(f"| {'what':<28} | {'median ms':>9} | {'p99 ms':>7} | {'vs baseline':>11} |")
    print(f"|{'-' * 30}|{'-' * 11}:|{'-' * 8}:|{'-' * 12}:|")
    for name, samples in results.items():
        median, p99 = stats(samples)
        print(f"| {name:<28} | {median:>9.1f} | {p99:>7.1f} | {base_median / median:>10.1f}x |")
    page = results.get(PAGE)
    if page is None:
        print(f"\n(no {CHROMIUM}: the page was not timed)")
    else:
        median, _ = stats(page)
        under = median < 1000
        print(f"\nthe page shows {n_orders} orders in {median:.0f} ms (under a second: {under})")


def main(server: str, redis_url: str, n_orders: int, runs: int) -> None:
    with fresh_deployment(server, redis_url, "packing", environment="development") as settings:
        world, results = asyncio.run(prepare(settings, n_orders, runs))
        if os.path.exists(CHROMIUM):
            with serving(settings) as base:
                results[PAGE] = asyncio.run(page_runs(base, settings, world, runs))
        report(results, n_orders, len(world["boxes"]), runs)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--orders", type=int, default=500)
    p.add_argument("--runs", type=int, default=15)
    a = p.parse_args()
    main(a.server, a.redis, a.orders, a.runs)
