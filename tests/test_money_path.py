"""The money path under attack and under races, on real `panen serve` and `panen worker`
processes: a poisoned batch of socket orders, each pair of operations that lock the same
rows racing, a storm of cancels, money that arrives too late, totals after a rebuild."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from commerce.orders import writer
from core.clock import utcnow
from core.db import Database
from core.ids import new_id
from core.services import Services
from core.settings import Settings
from donations.transparency import log as tlog
from live import rooms
from panen.flows.expire import expire_reservations
from panen.flows.settle import settle_all
from tests.api import (
    auth,
    donate,
    live_listing,
    make_buyers,
    order,
    pay,
    provider_event,
    register,
    user_with_roles,
)
from tests.checks import assert_charity_books, assert_ledger_invariants, assert_log_gap_free
from tests.conftest import process_env
from tests.live_clients import Viewer
from tests.processes import Server, Worker, running


@pytest.fixture(scope="module")
def env(settings: Settings) -> dict[str, str]:
    return process_env(settings)


@pytest.fixture(scope="module")
def web(env: dict[str, str]) -> Iterator[tuple[Server, Server]]:
    pair = (Server(env), Server(env))
    with running(*pair):
        yield pair


async def wait_until(check: Any, within: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.1)


async def log_drained(db: Database) -> bool:
    """No committed log entry waits to be sequenced."""
    async with db.reader() as s:
        count, _ = await tlog.backlog(s)
    return count == 0


async def statuses(db: Database, order_ids: list[str]) -> dict[str, tuple[str, str]]:
    """order id -> (order status, payment status)."""
    async with db.reader() as s:
        rows = await s.execute(
            text(
                "SELECT o.id, o.status, p.status AS paid FROM orders o"
                " JOIN payments p ON p.order_id = o.id WHERE o.id = ANY(:ids)"
            ),
            {"ids": order_ids},
        )
        return {r.id: (r.status, r.paid) for r in rows}


def no_server_errors(codes: Counter[int]) -> None:
    assert not [c for c in codes if c >= 500], codes


# --- One bad order never spoils the others --------------------------------------------


async def test_socket_orders_with_overlong_keys_are_refused_and_the_rest_sell_exactly_the_stock(
    web, client, admin_token, db, settings
):
    """22 socket orders whose key does not fit the column, among 150 HTTP buyers of 100
    units: each bad frame gets an error frame naming the key, nobody gets a 500, and the
    stock sells exactly once, through payment and settlement."""
    a, b = web
    stock = 100
    _, listing = await live_listing(client, admin_token, stock=stock)
    buyers = await make_buyers(db, settings, 150)
    attackers = await make_buyers(db, settings, 22)
    sockets = [await Viewer.connect(a.ws, h["Authorization"].split()[1]) for h in attackers]

    async def bad_frame(i: int, v: Viewer) -> dict[str, Any]:
        await v.send(
            {
                "type": "order",
                "id": f"bad{i}",
                "listing_id": listing["id"],
                "quantity": 1,
                "idempotency_key": "k" * 200,
            }
        )
        return await v.expect(lambda f: f.get("id") == f"bad{i}")

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as http:

        async def buy(i: int, headers: dict[str, str]) -> httpx.Response:
            return await http.post(
                (a, b)[i % 2].base + "/api/orders",
                headers={**headers, "Idempotency-Key": f"poison-{i}"},
                json={"listing_id": listing["id"], "quantity": 1},
            )

        answers = await asyncio.gather(
            *(buy(i, h) for i, h in enumerate(buyers)),
            *(bad_frame(i, v) for i, v in enumerate(sockets)),
        )
        http_answers = [r for r in answers if isinstance(r, httpx.Response)]
        frames = [f for f in answers if isinstance(f, dict)]
        codes = Counter(r.status_code for r in http_answers)
        no_server_errors(codes)
        assert codes[201] == stock and codes[409] == 150 - stock, codes
        assert all(
            f["type"] == "error"
            and f["code"] == "invalid_field"
            and f["field"] == "idempotency_key"
            for f in frames
        ), frames
        placed = [r.json()["order"] for r in http_answers if r.status_code == 201]
        paid = await asyncio.gather(
            *(
                http.post(
                    f"{b.base}/api/payments/{o['payment']['id']}/sandbox/approve",
                    headers=auth(admin_token),
                )
                for o in placed
            )
        )
        assert Counter(r.status_code for r in paid) == {200: stock}
    for v in sockets:
        await v.close()
    await settle_all(app_services(client))
    async with db.reader() as s:
        sold = await s.scalar(
            text(
                "SELECT coalesce(sum(quantity), 0) FROM orders"
                " WHERE listing_id = :l AND status = 'settled'"
            ),
            {"l": listing["id"]},
        )
    assert sold == stock
    await assert_ledger_invariants(db)


def app_services(client: httpx.AsyncClient) -> Services:
    app = client._transport.app  # type: ignore[attr-defined]
    services: Services = app.state.services
    return services


async def test_a_batch_with_a_row_the_database_refuses_writes_every_other_row(
    app, client, admin_token
):
    """The order writer's statement fails as a whole on one bad row; then each row is
    written on its own, and only the bad one fails."""
    world, listing = await live_listing(client, admin_token, stock=5)
    services: Services = app.state.services
    buyer = await register(client)
    assert (await order(client, buyer, listing["id"])).status_code == 201  # builds the counter
    async with services.db.reader() as s:
        gen = await s.scalar(
            text("SELECT generation FROM inventory_generations WHERE inventory_id = :i"),
            {"i": listing["id"]},
        )

    def row(key: str) -> dict[str, Any]:
        return {
            "id": new_id("ord"),
            "session_id": world.session["id"],
            "listing_id": listing["id"],
            "deal_id": None,
            "inventory_id": listing["id"],
            "generation": gen,
            "buyer_id": buyer.id,
            "farmer_id": world.farmer_id,
            "charity_id": world.charity["id"],
            "idempotency_key": key,
            "quantity": 1,
            "unit_price": 95_000,
            "total": 95_000,
            "pledge_amount": 0,
            "fee_amount": 4_750,
            "farmer_amount": 90_250,
            "currency": "IDR",
            "expires_at": utcnow(),
            "payment_id": new_id("pay"),
            "provider": "sandbox",
            "provider_ref": None,
            "address_id": None,
            "weight_g": 1000,
        }

    rows = [row("ok-1"), row("x" * 101), row("ok-2")]
    results = await writer._insert_batch(services, rows)
    assert [isinstance(r, Exception) for r in results] == [False, True, False]
    async with services.db.reader() as s:
        written = await s.scalar(
            text("SELECT count(*) FROM orders WHERE id = ANY(:ids)"),
            {"ids": [r["id"] for r in rows]},
        )
    assert written == 2


# --- Pairs of operations that lock the same rows, racing --------------------------------


async def test_payments_racing_cancels_and_refunds_never_deadlock_and_money_ends_returned(
    web, env, client, admin_token, db, settings
):
    """Each order gets its payment's success (signed webhook) and its host's cancel at the
    same moment, on two processes: whichever wins, no 500, and the buyer's money ends
    returned (refunded after payment, or returned as a late payment)."""
    a, b = web
    world, listing = await live_listing(client, admin_token, stock=40, pledge_bps=500)
    buyer = await register(client)
    placed = [(await order(client, buyer, listing["id"])).json()["order"] for _ in range(30)]
    async with httpx.AsyncClient(timeout=60) as http:

        async def webhook(o: dict[str, Any], base: str) -> httpx.Response:
            body, headers = provider_event(settings, o["payment"]["id"], o["total"])
            return await http.post(
                base + "/api/payments/webhook/sandbox", content=body, headers=headers
            )

        async def cancel(o: dict[str, Any], base: str) -> httpx.Response:
            return await http.post(
                f"{base}/api/orders/{o['id']}/cancel", headers=world.host.headers
            )

        answers = await asyncio.gather(
            *(webhook(o, (a, b)[i % 2].base) for i, o in enumerate(placed)),
            *(cancel(o, (b, a)[i % 2].base) for i, o in enumerate(placed)),
        )
    codes = Counter(r.status_code for r in answers)
    no_server_errors(codes)
    assert set(codes) == {200}, codes
    ids = [o["id"] for o in placed]

    async def all_returned() -> bool:
        got = await statuses(db, ids)
        return all(p == "refunded" for _, p in got.values())

    await wait_until(all_returned, what="every payment refunded")
    ends = Counter(s for s, _ in (await statuses(db, ids)).values())
    assert set(ends) <= {"cancelled", "refunded"}, ends
    await assert_ledger_invariants(db)


async def test_settlement_gifts_and_refunds_of_one_room_race_without_a_500(
    web, env, client, admin_token, db, settings
):
    """Orders settling (a worker), gifts being paid and settled orders being refunded, in
    one room with a sponsor match and energy points: the three flows take the points,
    matches, room sums and log head in one order, so none waits on another forever."""
    a, b = web
    world, listing = await live_listing(client, admin_token, stock=200, pledge_bps=1000)
    sponsor = await user_with_roles(client, admin_token, "sponsor")
    r = await client.post(
        f"/api/sessions/{world.session['id']}/matches",
        headers=sponsor.headers,
        json={"sponsor_name": "Bank Tani", "ratio_bps": 5_000, "cap": 10_000_000},
    )
    assert r.status_code == 201, r.text
    buyers = [await register(client) for _ in range(6)]
    first = [(await order(client, buyers[i % 6], listing["id"])).json()["order"] for i in range(15)]
    for i, o in enumerate(first):
        assert (await pay(client, buyers[i % 6], o)).status_code == 200
    await settle_all(app_services(client))
    second = [
        (await order(client, buyers[i % 6], listing["id"])).json()["order"] for i in range(20)
    ]
    gifts = []
    for i in range(20):
        r = await donate(client, buyers[i % 6], world, 10_000 + i)
        assert r.status_code == 201, r.text
        gifts.append((buyers[i % 6], r.json()))
    with running(Worker(env)):
        async with httpx.AsyncClient(timeout=60) as http:
            answers = await asyncio.gather(
                *(
                    http.post(
                        f"{(a, b)[i % 2].base}/api/payments/{o['payment']['id']}/sandbox/approve",
                        headers=buyers[i % 6].headers,
                    )
                    for i, o in enumerate(second)
                ),
                *(
                    http.post(
                        f"{(b, a)[i % 2].base}/api/payments/{g['payment']['id']}/sandbox/approve",
                        headers=giver.headers,
                    )
                    for i, (giver, g) in enumerate(gifts)
                ),
                *(
                    http.post(f"{a.base}/api/orders/{o['id']}/cancel", headers=world.host.headers)
                    for o in first
                ),
            )
        codes = Counter(r.status_code for r in answers)
        no_server_errors(codes)
        assert set(codes) == {200}, codes

        async def settled() -> bool:
            got = await statuses(db, [o["id"] for o in second])
            return all(s == "settled" for s, _ in got.values())

        await wait_until(settled, what="the worker settling every paid order")
        # Payments and refunds answer before their log entries are sequenced (the web
        # process does it in the background, the worker's sweep behind it): the books
        # are compared once nothing waits in the queue.
        await wait_until(lambda: log_drained(db), what="every log entry sequenced")
    await assert_ledger_invariants(db)
    await assert_charity_books(db, world.charity["id"])
    await assert_log_gap_free(db)


async def test_a_payment_racing_the_expiry_of_its_order_is_either_paid_or_returned(
    web, client, admin_token, db, settings
):
    a, b = web
    _, listing = await live_listing(client, admin_token, stock=30)
    buyer = await register(client)
    placed = [(await order(client, buyer, listing["id"])).json()["order"] for _ in range(20)]
    ids = [o["id"] for o in placed]
    async with db.transaction() as s:  # their time is up
        await s.execute(
            text("UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = ANY(:i)"),
            {"i": ids},
        )
    services = app_services(client)
    async with httpx.AsyncClient(timeout=60) as http:

        async def webhook(o: dict[str, Any], base: str) -> int:
            body, headers = provider_event(settings, o["payment"]["id"], o["total"])
            r = await http.post(
                base + "/api/payments/webhook/sandbox", content=body, headers=headers
            )
            return r.status_code

        got = await asyncio.gather(
            *(webhook(o, (a, b)[i % 2].base) for i, o in enumerate(placed)),
            expire_reservations(services),
            expire_reservations(services),
        )
    assert set(got[:20]) == {200}, got

    async def decided() -> bool:
        rows = await statuses(db, ids)
        return all(
            (s, p) in {("paid", "succeeded"), ("settled", "succeeded"), ("expired", "refunded")}
            for s, p in rows.values()
        )

    await wait_until(decided, what="each order paid, or expired with its money returned")
    await assert_ledger_invariants(db)


# --- A storm of cancels leaves the process answering ------------------------------------


async def test_thirty_concurrent_cancels_all_answer_and_the_process_keeps_serving(
    web, client, admin_token, db
):
    a, _ = web
    world, listing = await live_listing(client, admin_token, stock=40)
    buyers = [await register(client) for _ in range(30)]
    placed = [(await order(client, b, listing["id"])).json()["order"] for b in buyers]
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as http:

        async def timed_get() -> float:
            await asyncio.sleep(0.05)
            t0 = time.monotonic()
            r = await http.get(f"{a.base}/api/sessions/{world.session['id']}")
            assert r.status_code == 200
            return time.monotonic() - t0

        *cancels, took = await asyncio.gather(
            *(
                http.post(f"{a.base}/api/orders/{o['id']}/cancel", headers=b.headers)
                for o, b in zip(placed, buyers, strict=True)
            ),
            timed_get(),
        )
    assert Counter(r.status_code for r in cancels) == {200: 30}
    assert all(r.json()["order"]["status"] == "cancelled" for r in cancels)
    assert took < 3.0, f"an anonymous read waited {took:.1f} s behind the cancels"


# --- Money that arrives too late goes back ------------------------------------------------


async def test_a_payment_that_lands_after_its_order_was_cancelled_is_returned_and_told(
    web, client, admin_token, db, settings
):
    a, _ = web
    _, listing = await live_listing(client, admin_token, stock=5)
    buyer = await register(client)
    placed = (await order(client, buyer, listing["id"])).json()["order"]
    me = await Viewer.connect(a.ws, buyer.token)
    await me.subscribe("me")
    r = await client.post(f"/api/orders/{placed['id']}/cancel", headers=buyer.headers)
    assert r.json()["order"]["status"] == "cancelled"
    body, headers = provider_event(settings, placed["payment"]["id"], placed["total"])
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(a.base + "/api/payments/webhook/sandbox", content=body, headers=headers)
        assert r.status_code == 200 and r.json()["status"] == "applied", r.text
        again = await http.post(
            a.base + "/api/payments/webhook/sandbox", content=body, headers=headers
        )
        assert again.json()["status"] == "duplicate"  # the same delivery returns it once
    got = (await client.get(f"/api/orders/{placed['id']}", headers=buyer.headers)).json()["order"]
    assert got["status"] == "cancelled" and got["payment"]["status"] == "refunded"
    assert got["history"][-1]["note"] == "late payment refunded"
    frame = await me.expect(
        lambda f: (
            f["type"] == "ticker" and any(e["type"] == "payment_refunded" for e in f["events"])
        )
    )
    told = next(e for e in frame["events"] if e["type"] == "payment_refunded")
    assert (told["amount"], told["order_id"]) == (placed["total"], placed["id"])
    await me.close()
    async with db.reader() as s:
        kinds = [
            r.kind
            for r in await s.execute(
                text(
                    "SELECT kind FROM ledger_transactions WHERE order_id = :o ORDER BY created_at"
                ),
                {"o": placed["id"]},
            )
        ]
    assert kinds == ["late_payment", "late_payment_returned"]
    await assert_ledger_invariants(db)


async def test_a_payment_that_lands_after_its_order_expired_is_returned(
    client, admin_token, db, settings, app
):
    _, listing = await live_listing(client, admin_token, stock=5)
    buyer = await register(client)
    placed = (await order(client, buyer, listing["id"])).json()["order"]
    async with db.transaction() as s:
        await s.execute(
            text("UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = :i"),
            {"i": placed["id"]},
        )
    assert await expire_reservations(app.state.services) >= 1
    body, headers = provider_event(settings, placed["payment"]["id"], placed["total"])
    r = await client.post("/api/payments/webhook/sandbox", content=body, headers=headers)
    assert r.json()["status"] == "applied"
    got = (await client.get(f"/api/orders/{placed['id']}", headers=buyer.headers)).json()["order"]
    assert (got["status"], got["payment"]["status"]) == ("expired", "refunded")
    await assert_ledger_invariants(db)


async def test_a_gift_paid_after_its_payment_failed_is_returned(client, admin_token, db, settings):
    world, _ = await live_listing(client, admin_token)
    donor = await register(client)
    made = (await donate(client, donor, world, 25_000)).json()
    r = await client.post(
        f"/api/payments/{made['payment']['id']}/sandbox/decline", headers=donor.headers
    )
    assert r.json()["donation"]["status"] == "failed"
    body, headers = provider_event(settings, made["payment"]["id"], 25_000)
    r = await client.post("/api/payments/webhook/sandbox", content=body, headers=headers)
    assert r.json()["status"] == "applied"
    got = (
        await client.get(f"/api/donations/{made['donation']['id']}", headers=donor.headers)
    ).json()
    assert got["donation"]["status"] == "failed" and got["payment"]["status"] == "refunded"
    await assert_ledger_invariants(db)


# --- Totals folded from events equal totals rebuilt from the database ----------------------


async def test_room_and_farmer_totals_equal_the_database_through_pay_settle_and_refunds(
    web, client, admin_token, db, settings
):
    """A room and a farmer watched live, rebuilt from PostgreSQL while an order was paid
    but not settled, then folded through settlement, a refund before settlement and one
    after: at every step the live totals equal a fresh rebuild, and the farmer's equal the
    API's."""
    a, _ = web
    services = app_services(client)
    world, listing = await live_listing(client, admin_token, stock=20, pledge_bps=1000)
    topic = f"session:{world.session['id']}"
    farmer = world.farmer
    buyer = await register(client)

    async def paid_order() -> dict[str, Any]:
        o = (await order(client, buyer, listing["id"], 2)).json()["order"]
        assert (await pay(client, buyer, o)).status_code == 200
        return o

    first = await paid_order()  # paid, not settled: no worker runs here
    (await order(client, buyer, listing["id"])).json()  # and one only reserved
    room = await Viewer.connect(a.ws)
    await room.subscribe(topic)  # nobody watched: rebuilt from the database now
    books = await Viewer.connect(a.ws, farmer.token)
    await books.subscribe(f"farmer:{world.farmer_id}")

    room_fields = ("orders", "units_sold", "gross")

    async def agree(step: str) -> None:
        fresh = await rooms.cold_state(services, topic)
        rooms.finish(fresh)
        want_room = {k: fresh["totals"][k] for k in room_fields}
        want_room["pledged"] = fresh["totals"]["charity"]["pledged"]
        api = (
            await client.get(f"/api/farmers/{world.farmer_id}/totals", headers=farmer.headers)
        ).json()
        farmer_fields = ("units_sold", "gross", "pledged", "fees", "payout_pending")
        want_farmer = {k: api[k] for k in farmer_fields}

        def room_ok(f: dict[str, Any]) -> bool:
            t = f.get("totals") or (f.get("snapshot") or {}).get("totals") or {}
            got = {k: t.get(k) for k in room_fields}
            got["pledged"] = (t.get("charity") or {}).get("pledged")
            return got == want_room

        def farmer_ok(f: dict[str, Any]) -> bool:
            t = f.get("totals") or (f.get("snapshot") or {}).get("totals") or {}
            return {k: t.get(k) for k in farmer_fields} == want_farmer

        for viewer, ok, what in ((room, room_ok, "room"), (books, farmer_ok, "farmer")):
            latest = [f for f in viewer.seen if f["type"] in ("subscribed", "ticker")][-1:]
            if not any(ok(f) for f in latest):
                try:
                    await viewer.expect(ok, within=10)
                except AssertionError:
                    raise AssertionError(
                        f"{step}: the {what}'s live totals never equalled "
                        f"the database's: {viewer.seen[-1:]}"
                    ) from None

    await agree("paid, before settlement")
    await settle_all(services)
    await agree("settled")
    late = await paid_order()
    r = await client.post(f"/api/orders/{late['id']}/cancel", headers=world.host.headers)
    assert r.json()["order"]["status"] == "refunded"
    await agree("refunded before settlement")
    r = await client.post(f"/api/orders/{first['id']}/cancel", headers=world.host.headers)
    assert r.json()["order"]["status"] == "refunded"
    await agree("refunded after settlement")
    await room.close()
    await books.close()
    await assert_ledger_invariants(db)
