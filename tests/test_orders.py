"""Placing, reading and cancelling orders through the HTTP API (in-process app)."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import event, text

from commerce.orders import service as order_service
from commerce.stock import service as inventory
from panen.flows.expire import expire_reservations
from panen.flows.settle import settle_all
from tests.api import live_listing, order, pay, register
from tests.checks import assert_ledger_invariants


async def test_an_order_reserves_stock_and_answers_with_total_pledge_and_payment(
    client, admin_token
):
    world, listing = await live_listing(client, admin_token, stock=5, pledge_bps=1000)
    buyer = await register(client)
    r = await order(client, buyer, listing["id"], 2)
    assert r.status_code == 201, r.text
    o = r.json()["order"]
    assert o["status"] == "reserved"
    assert o["total"] == 190_000
    assert o["pledge_amount"] == 19_000
    assert o["pledge_amount"] + o["fee_amount"] + o["farmer_amount"] == o["total"]
    assert o["expires_at"].endswith("Z")
    assert o["payment"]["provider"] == "sandbox" and o["payment"]["status"] == "pending"
    r = await client.get(f"/api/orders/{o['id']}", headers=buyer.headers)
    assert r.status_code == 200
    assert [h["status"] for h in r.json()["order"]["history"]] == ["reserved"]
    r = await client.get("/api/me/orders", headers=buyer.headers)
    assert [x["id"] for x in r.json()["orders"]] == [o["id"]]
    # The host sees it; another viewer does not.
    assert (
        await client.get(f"/api/orders/{o['id']}", headers=world.host.headers)
    ).status_code == 200
    other = await register(client)
    assert (await client.get(f"/api/orders/{o['id']}", headers=other.headers)).status_code == 404


async def test_the_same_idempotency_key_returns_the_same_order_and_another_body_is_409(
    client, admin_token
):
    _, listing = await live_listing(client, admin_token, stock=5)
    buyer = await register(client)
    first = await order(client, buyer, listing["id"], 1, key="k-1")
    again = await order(client, buyer, listing["id"], 1, key="k-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["order"]["id"] == again.json()["order"]["id"]
    other = await order(client, buyer, listing["id"], 2, key="k-1")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    # Another user may use the same key for their own order.
    someone = await register(client)
    assert (await order(client, someone, listing["id"], 1, key="k-1")).status_code == 201


async def test_a_repeated_key_answers_with_the_order_as_it_is_now(client, admin_token):
    _, listing = await live_listing(client, admin_token, stock=5)
    buyer = await register(client)
    first = (await order(client, buyer, listing["id"], 1, key="k-now")).json()["order"]
    r = await client.post(f"/api/orders/{first['id']}/cancel", headers=buyer.headers)
    assert r.status_code == 200, r.text
    again = await order(client, buyer, listing["id"], 1, key="k-now")
    assert again.status_code == 200
    assert again.json()["order"]["id"] == first["id"]
    assert again.json()["order"]["status"] == "cancelled"  # not the reservation it once was


class _EveryCallItsOwnProcess(dict):  # type: ignore[type-arg]
    """No request of this process sees another's order being placed (as when the two
    copies land on different processes)."""

    def get(self, key, default=None):  # type: ignore[no-untyped-def]
        return None

    def __delitem__(self, key) -> None:  # type: ignore[no-untyped-def]
        self.pop(key, None)


async def test_a_duplicate_sent_alongside_the_first_gets_its_answer_without_the_database(
    app, client, admin_token, monkeypatch
):
    """A stampede's duplicate sends (on other processes) ran while the order was being
    placed: the order as placed answers them (from Redis); only a later repeat reads the
    order as it is now."""
    monkeypatch.setattr(order_service, "_placing", _EveryCallItsOwnProcess())
    _, listing = await live_listing(client, admin_token, stock=5)
    buyer = await register(client)
    reads: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if "FROM order_status_history" in statement:  # an order read as it is now
            reads.append(statement)

    engine = app.state.services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        pair = await asyncio.gather(
            *(order(client, buyer, listing["id"], 1, key="k-pair") for _ in "ab")
        )
        assert sorted(r.status_code for r in pair) == [200, 201], [r.text for r in pair]
        assert reads == []
        assert pair[0].json() == pair[1].json()
        again = await order(client, buyer, listing["id"], 1, key="k-pair")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert again.json() == pair[0].json()
    assert len(reads) == 1  # the later repeat: the order as it is now


def _counted(monkeypatch, name: str) -> list[None]:  # type: ignore[no-untyped-def]
    """Count the calls of `inventory.<name>`."""
    calls: list[None] = []
    real = getattr(inventory, name)

    async def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(None)
        return await real(*args, **kwargs)

    monkeypatch.setattr(inventory, name, counting)
    return calls


def _late(monkeypatch, name: str, by_s: float) -> None:  # type: ignore[no-untyped-def]
    """`inventory.<name>` (keeping an answer, giving a hold back) happens `by_s` late."""
    real = getattr(inventory, name)

    async def late(*args, **kwargs):  # type: ignore[no-untyped-def]
        await asyncio.sleep(by_s)
        return await real(*args, **kwargs)

    monkeypatch.setattr(inventory, name, late)


async def test_a_duplicate_on_another_process_is_answered_when_its_first_answer_is_kept(
    client, admin_token, monkeypatch
):
    """The duplicate is woken by the keeping of the answer, not by its own timer: it looks
    on arrival, once its wake-ups are heard, and when woken; the first send keeps its
    answer half a second late, and the timer of a listening waiter would take a minute."""
    monkeypatch.setattr(order_service, "_placing", _EveryCallItsOwnProcess())
    monkeypatch.setattr(order_service, "UNANNOUNCED_POLL_S", 60.0)
    _late(monkeypatch, "remember_answer", 0.5)
    looks = _counted(monkeypatch, "answered")
    _, listing = await live_listing(client, admin_token, stock=5)
    buyer = await register(client)
    async with asyncio.timeout(10):
        pair = await asyncio.gather(
            *(order(client, buyer, listing["id"], 1, key="k-woken") for _ in "ab")
        )
    assert sorted(r.status_code for r in pair) == [200, 201], [r.text for r in pair]
    assert pair[0].json() == pair[1].json()
    assert len(looks) <= 3  # polling every 5-100 ms for half a second would be 7 or more


async def test_a_duplicate_on_another_process_tries_afresh_when_its_first_send_gives_up(
    client, admin_token, monkeypatch
):
    """A first send that gives its hold back (here: the buyer has no address) wakes the
    duplicate waiting for it, which then places the order itself: same answer, no wait."""
    monkeypatch.setattr(order_service, "_placing", _EveryCallItsOwnProcess())
    monkeypatch.setattr(order_service, "UNANNOUNCED_POLL_S", 60.0)
    _late(monkeypatch, "release", 0.5)
    _, listing = await live_listing(client, admin_token, stock=5)
    buyer = await register(client, address=False)
    async with asyncio.timeout(10):
        pair = await asyncio.gather(
            *(order(client, buyer, listing["id"], 1, key="k-gave-up") for _ in "ab")
        )
    assert [r.status_code for r in pair] == [409, 409], [r.text for r in pair]
    assert {r.json()["error"]["code"] for r in pair} == {"address_required"}


async def test_a_duplicate_whose_first_send_wrote_its_order_and_died_finds_it_in_the_database(
    client, admin_token, monkeypatch
):
    """The first send never keeps its answer (its process died after writing the order):
    the duplicate answers with the order from the database within a few seconds, not
    after the ten it waits at most."""
    monkeypatch.setattr(order_service, "_placing", _EveryCallItsOwnProcess())
    _late(monkeypatch, "remember_answer", 60)
    _, listing = await live_listing(client, admin_token, stock=5)
    buyer = await register(client)
    first = asyncio.create_task(order(client, buyer, listing["id"], 1, key="k-died"))
    try:
        await asyncio.sleep(0.3)  # the first has reserved and is writing
        started = time.monotonic()
        again = await order(client, buyer, listing["id"], 1, key="k-died")
        took = time.monotonic() - started
    finally:
        first.cancel()
    assert again.status_code == 200, again.text
    assert again.json()["order"]["status"] == "reserved"
    assert took < order_service.PRIOR_IN_DB_S + 1.5, took


async def test_a_slow_first_send_reusing_a_key_of_another_session_answers_no_duplicate_200(
    client, admin_token, monkeypatch
):
    """A key is the buyer's across sessions, its Redis record per session: a duplicate
    that looks in the database while a slow first send reuses a key of another session
    must not answer with that other order."""
    monkeypatch.setattr(order_service, "_placing", _EveryCallItsOwnProcess())
    _, earlier = await live_listing(client, admin_token, stock=5)
    _, listing = await live_listing(client, admin_token, stock=5)
    buyer = await register(client)
    assert (await order(client, buyer, earlier["id"], 1, key="k-shared")).status_code == 201
    write, calls = order_service.order_writer.write, []

    async def slow_first(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(None)
        if len(calls) == 1:
            await asyncio.sleep(order_service.PRIOR_IN_DB_S + 1.5)  # past the duplicate's look
        return await write(*args, **kwargs)

    monkeypatch.setattr(order_service.order_writer, "write", slow_first)
    first = asyncio.create_task(order(client, buyer, listing["id"], 1, key="k-shared"))
    await asyncio.sleep(0.3)
    again = await order(client, buyer, listing["id"], 1, key="k-shared")
    answers = [await first, again]
    assert [r.status_code for r in answers] == [409, 409], [r.text for r in answers]
    assert {r.json()["error"]["code"] for r in answers} == {"idempotency_key_reused"}


async def test_a_counter_left_behind_by_an_older_rebuild_is_dropped_and_rebuilt_by_the_next_order(
    app, client, admin_token, db
):
    """Two rebuilds overlapped and the older one's counter is what Redis holds: every order
    it takes is refused by the database. The first refused order drops it; the retry
    rebuilds it from the orders and is placed."""
    world, listing = await live_listing(client, admin_token, stock=5)
    a, b = await register(client), await register(client)
    assert (await order(client, a, listing["id"], 1)).status_code == 201
    async with db.transaction() as s:
        await s.execute(
            text(
                "UPDATE inventory_generations SET generation = generation + 1"
                " WHERE inventory_id = :i"
            ),
            {"i": listing["id"]},
        )
    r = await order(client, b, listing["id"], 1)
    assert r.status_code == 201, r.text
    sid = world.session["id"]
    assert await inventory.remaining(app.state.services, sid, listing["id"]) == 3


async def test_a_counter_whose_rebuilder_died_is_rebuilt_once_its_lease_lapses(
    app, client, admin_token
):
    """Redis lost a listing's counter and the process rebuilding it was killed, leaving its
    lock: an order waits only for the lock's lease (renewed by a live rebuilder), then
    rebuilds the counter itself, counting the order already placed."""
    world, listing = await live_listing(client, admin_token, stock=5)
    a, b = await register(client), await register(client)
    assert (await order(client, a, listing["id"], 1)).status_code == 201
    services = app.state.services
    sid = world.session["id"]
    await services.redis.delete(
        *(services.keys.session(sid, part, listing["id"]) for part in ("inv", "bought", "holds"))
    )
    lock = services.keys.session(sid, "rebuild", listing["id"])
    await services.redis.set(lock, b"1", px=inventory.REBUILD_LEASE_MS)  # and nobody renews it
    started = time.monotonic()
    r = await order(client, b, listing["id"], 1)
    took = time.monotonic() - started
    assert r.status_code == 201, r.text
    assert inventory.REBUILD_LEASE_MS / 1000 - 0.5 < took < inventory.REBUILD_LEASE_MS / 1000 + 2
    assert await inventory.remaining(services, sid, listing["id"]) == 3


async def test_sold_out_limit_and_not_live_are_409_with_stable_codes(client, admin_token):
    _, listing = await live_listing(client, admin_token, stock=3, max_per_buyer=2)
    a, b = await register(client), await register(client)
    assert (await order(client, a, listing["id"], 2)).status_code == 201
    r = await order(client, a, listing["id"], 1)
    assert r.status_code == 409 and r.json()["error"]["code"] == "limit_exceeded"
    r = await order(client, b, listing["id"], 2)
    assert r.status_code == 409 and r.json()["error"]["code"] == "sold_out"
    assert r.json()["error"]["details"]["remaining"] == 1
    assert (await order(client, b, listing["id"], 1)).status_code == 201
    _, scheduled = await live_listing(client, admin_token, stock=3, start=False)
    r = await order(client, a, scheduled["id"], 1)
    assert r.status_code == 409 and r.json()["error"]["code"] == "session_not_live"


async def test_bad_order_input_is_400_with_the_field_and_changes_nothing(client, admin_token):
    _, listing = await live_listing(client, admin_token, stock=3)
    buyer = await register(client)
    r = await client.post(
        "/api/orders", headers=buyer.headers, json={"listing_id": listing["id"], "quantity": 1}
    )
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "Idempotency-Key"
    for body, field in (
        ({"listing_id": listing["id"], "quantity": 0}, "quantity"),
        ({"listing_id": listing["id"], "quantity": "1"}, "quantity"),
        ({"listing_id": listing["id"]}, "quantity"),
        ({"listing_id": "../x", "quantity": 1}, "listing_id"),
    ):
        r = await client.post(
            "/api/orders", headers={**buyer.headers, "Idempotency-Key": "bad"}, json=body
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["details"]["field"] == field
    r = await order(client, buyer, "lst_does_not_exist", 1)
    assert r.status_code == 404
    assert (await client.post("/api/orders", json={})).status_code == 401
    r = await client.get("/api/me/orders", headers=buyer.headers)
    assert r.json()["orders"] == []


async def test_a_buyer_cancels_before_paying_and_the_stock_returns(client, admin_token):
    _, listing = await live_listing(client, admin_token, stock=1)
    a, b = await register(client), await register(client)
    placed = (await order(client, a, listing["id"])).json()["order"]
    assert (await order(client, b, listing["id"])).json()["error"]["code"] == "sold_out"
    r = await client.post(f"/api/orders/{placed['id']}/cancel", headers=b.headers)
    assert r.status_code == 404, r.text  # another's order does not exist to them
    r = await client.post(f"/api/orders/{placed['id']}/cancel", headers=a.headers)
    assert r.status_code == 200 and r.json()["order"]["status"] == "cancelled"
    assert r.json()["order"]["payment"]["status"] == "cancelled"
    assert (await order(client, b, listing["id"])).status_code == 201


async def test_unpaid_reservations_expire_and_their_stock_returns(app, client, admin_token, db):
    _, listing = await live_listing(client, admin_token, stock=1)
    a, b = await register(client), await register(client)
    placed = (await order(client, a, listing["id"])).json()["order"]
    async with db.transaction() as s:
        from sqlalchemy import text

        await s.execute(
            text("UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = :i"),
            {"i": placed["id"]},
        )
    assert await expire_reservations(app.state.services) >= 1
    got = (await client.get(f"/api/orders/{placed['id']}", headers=a.headers)).json()["order"]
    assert got["status"] == "expired"
    assert [h["status"] for h in got["history"]] == ["reserved", "expired"]
    assert (await order(client, b, listing["id"])).status_code == 201
    # Paying an expired reservation is refused.
    r = await pay(client, a, placed)
    assert r.status_code == 409


async def test_paying_settles_into_the_ledger_and_the_farmer_totals(app, client, admin_token, db):
    world, listing = await live_listing(
        client, admin_token, stock=10, pledge_per_unit=5_000, max_per_buyer=5
    )
    buyer = await register(client)
    placed = (await order(client, buyer, listing["id"], 3)).json()["order"]
    r = await pay(client, buyer, placed)
    assert r.status_code == 200, r.text
    assert r.json()["order"]["status"] == "paid"
    totals = (
        await client.get(f"/api/farmers/{world.farmer_id}/totals", headers=world.farmer.headers)
    ).json()
    # A sale counts once it settles (the room and the farmer hear of it then), not before.
    assert totals["units_sold"] == 0 and totals["payout_pending"] == 0
    assert await settle_all(app.state.services) >= 1
    got = (await client.get(f"/api/orders/{placed['id']}", headers=buyer.headers)).json()["order"]
    assert [h["status"] for h in got["history"]] == ["reserved", "paid", "settled"]
    totals = (
        await client.get(f"/api/farmers/{world.farmer_id}/totals", headers=world.farmer.headers)
    ).json()
    assert totals["units_sold"] == 3 and totals["gross"] == 285_000
    assert totals["pledged"] == 15_000
    assert totals["fees"] == placed["fee_amount"]
    # Owed to the farmer (the ledger's payable), and nothing paid out yet.
    assert totals["payout_pending"] == placed["farmer_amount"] and totals["payout_settled"] == 0
    # the dashboard's chart: running gross per minute of payment, ending at the total
    assert totals["series"][-1]["gross"] == 285_000
    assert totals["series"][-1]["at"].endswith(":00Z")
    assert totals["by_product"][0]["units_sold"] == 3
    assert totals["by_session"][0]["session_id"] == world.session["id"]
    other = await register(client)
    r = await client.get(f"/api/farmers/{world.farmer_id}/totals", headers=other.headers)
    assert r.status_code == 403
    await assert_ledger_invariants(db)


async def test_a_host_refund_after_settlement_reverses_the_ledger_and_returns_stock(
    app, client, admin_token, db
):
    world, listing = await live_listing(client, admin_token, stock=1, pledge_bps=1000)
    buyer, next_buyer = await register(client), await register(client)
    placed = (await order(client, buyer, listing["id"])).json()["order"]
    await pay(client, buyer, placed)
    await settle_all(app.state.services)
    r = await client.post(f"/api/orders/{placed['id']}/cancel", headers=buyer.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_paid"
    r = await client.post(f"/api/orders/{placed['id']}/cancel", headers=world.host.headers)
    assert r.status_code == 200, r.text
    assert r.json()["order"]["status"] == "refunded"
    assert r.json()["order"]["payment"]["status"] == "refunded"
    totals = (
        await client.get(f"/api/farmers/{world.farmer_id}/totals", headers=world.farmer.headers)
    ).json()
    assert totals["units_sold"] == 0 and totals["payout_settled"] == 0
    assert (await order(client, next_buyer, listing["id"])).status_code == 201
    await assert_ledger_invariants(db)


async def test_pinning_and_a_flash_deal_with_its_own_price_stock_and_countdown(client, admin_token):
    world, listing = await live_listing(client, admin_token, stock=10)
    sid = world.session["id"]
    r = await client.post(
        f"/api/sessions/{sid}/pin", headers=world.host.headers, json={"listing_id": listing["id"]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["listing"]["remaining"] == 10
    viewer = await register(client)
    r = await client.post(
        f"/api/sessions/{sid}/pin", headers=viewer.headers, json={"listing_id": listing["id"]}
    )
    assert r.status_code == 403
    deal = {
        "listing_id": listing["id"],
        "price": 50_000,
        "stock": 2,
        "countdown_s": 0,
        "duration_s": 60,
        "max_per_buyer": 1,
    }
    for above in (95_000, 120_000):  # at or above the listing's price is no deal
        r = await client.post(
            f"/api/sessions/{sid}/flash-deals",
            headers=world.host.headers,
            json={**deal, "price": above},
        )
        assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "price"
    r = await client.post(f"/api/sessions/{sid}/flash-deals", headers=world.host.headers, json=deal)
    assert r.status_code == 201, r.text
    assert r.json()["price"] == 50_000
    r = await client.post(f"/api/sessions/{sid}/flash-deals", headers=world.host.headers, json=deal)
    assert r.status_code == 409 and r.json()["error"]["code"] == "deal_overlaps"
    a = await register(client)
    got = (await order(client, a, listing["id"])).json()["order"]
    assert got["unit_price"] == 50_000 and got["deal_id"] == r.json()["error"]["details"]["deal_id"]
    r = await order(client, a, listing["id"])
    assert r.json()["error"]["code"] == "limit_exceeded"


async def test_counters_of_live_sessions_are_rebuilt_at_start_from_the_orders(
    app, client, admin_token
):
    from commerce.stock import service as inventory
    from commerce.stock.tasks import warm_counters

    world, listing = await live_listing(client, admin_token, stock=7)
    buyer = await register(client)
    assert (await order(client, buyer, listing["id"], 2)).status_code == 201
    services = app.state.services
    sid = world.session["id"]
    keys = [k async for k in services.redis.scan_iter(services.keys.session(sid, "*"))]
    await services.redis.delete(*keys)  # as after a Redis restart
    assert await inventory.remaining(services, sid, listing["id"]) is None
    assert await warm_counters({"services": services}) >= 1
    assert await inventory.remaining(services, sid, listing["id"]) == 5


def _ids_made_long_ago(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Orders placed from now on get ids made long enough ago for the cron to look at."""
    from commerce.stock.tasks import ORPHANED_AFTER_S
    from core import ids

    def made_long_ago(prefix: str, *, at_ms: int | None = None) -> str:
        return ids.new_id(prefix, at_ms=int((time.time() - ORPHANED_AFTER_S - 5) * 1000))

    monkeypatch.setattr(order_service, "new_id", made_long_ago)


def _stall_the_first_write(monkeypatch) -> tuple[asyncio.Event, asyncio.Event]:  # type: ignore[no-untyped-def]
    """The next order written waits, reserved, until `resume` is set; `stalled` is set
    once it waits there."""
    from commerce.orders import writer

    stalled, resume = asyncio.Event(), asyncio.Event()
    real_write = writer.write

    async def stall_the_first(services_, params):  # type: ignore[no-untyped-def]
        if not stalled.is_set():
            stalled.set()
            await resume.wait()
        return await real_write(services_, params)

    monkeypatch.setattr(writer, "write", stall_the_first)
    return stalled, resume


async def _reserve_unwritten(
    services, sid: str, listing_id: str, buyer, key: str, qty: int, made_s_ago: float
):
    """A hold as a request leaves it when it dies between reserving and writing."""
    from commerce.orders.schemas import fingerprint
    from core.ids import new_id

    order_id = new_id("ord", at_ms=int((time.time() - made_s_ago) * 1000))
    r = await inventory.reserve(
        services,
        session_id=sid,
        inventory_id=listing_id,
        buyer_id=buyer.id,
        idempotency_key=key,
        fingerprint=fingerprint(listing_id, qty, None),
        quantity=qty,
        limit=None,
        order_id=order_id,
        expires_ms=int((time.time() + 600) * 1000),
    )
    assert r.outcome == "ok"
    return order_id


async def test_a_hold_whose_order_never_landed_is_given_back_within_a_minute_and_its_key_freed(
    app, client, admin_token
):
    from commerce.stock.tasks import ORPHANED_AFTER_S, reconcile_holds

    world, listing = await live_listing(client, admin_token, stock=7)
    buyer, other = await register(client), await register(client)
    # A real order, paid (its hold stays, however old) …
    placed = (await order(client, buyer, listing["id"], 2)).json()["order"]
    assert (await pay(client, buyer, placed)).status_code == 200
    services = app.state.services
    sid = world.session["id"]
    # … and a hold taken by a request that is writing its order right now: left alone.
    # (Other tests' sessions share this database: counts are read on this listing.)
    await _reserve_unwritten(services, sid, listing["id"], other, "young", 1, 0)
    await reconcile_holds({"services": services})
    assert await inventory.remaining(services, sid, listing["id"]) == 4
    # A hold whose request died before writing: given back once it is that old. The
    # counter is recounted from the orders, so the young hold goes too: its request, if
    # alive, has its write refused and reserves again; if it died, its key is free.
    await _reserve_unwritten(
        services, sid, listing["id"], buyer, "died-midway", 3, ORPHANED_AFTER_S + 1
    )
    assert await inventory.remaining(services, sid, listing["id"]) == 1
    assert await reconcile_holds({"services": services}) >= 2
    assert await inventory.remaining(services, sid, listing["id"]) == 5
    await reconcile_holds({"services": services})
    assert await inventory.remaining(services, sid, listing["id"]) == 5  # the paid one holds
    # The buyers' resends with the dead requests' keys are served afresh, not held up.
    r = await order(client, buyer, listing["id"], 3, key="died-midway")
    assert r.status_code == 201, r.text
    r = await order(client, other, listing["id"], 1, key="young")
    assert r.status_code == 201, r.text
    assert await inventory.remaining(services, sid, listing["id"]) == 1


async def test_one_counter_that_cannot_be_recounted_holds_up_no_other(
    app, client, admin_token, monkeypatch
):
    from commerce.stock import tasks
    from commerce.stock.tasks import ORPHANED_AFTER_S, reconcile_holds

    services = app.state.services
    stuck_world, stuck = await live_listing(client, admin_token, stock=5)
    world, listing = await live_listing(client, admin_token, stock=5)
    buyer = await register(client)
    for w, lst in ((stuck_world, stuck), (world, listing)):
        await inventory.rebuild(
            services, session_id=w.session["id"], inventory_id=lst["id"], stock=5
        )
        await _reserve_unwritten(
            services, w.session["id"], lst["id"], buyer, f"k-{lst['id']}", 2, ORPHANED_AFTER_S + 1
        )
    # Another process holds the stuck counter's rebuild lock and does not let go.
    lock = services.keys.session(stuck_world.session["id"], "rebuild", stuck["id"])
    await services.redis.set(lock, "someone-else", px=60_000)
    monkeypatch.setattr(tasks, "COUNTER_BUDGET_S", 0.5)
    try:
        async with asyncio.timeout(10):  # its budget, not the rebuild's 15 s wait for a lock
            await reconcile_holds({"services": services})
    finally:
        await services.redis.delete(lock)
    assert await inventory.remaining(services, world.session["id"], listing["id"]) == 5
    assert await inventory.remaining(services, stuck_world.session["id"], stuck["id"]) == 3
    await reconcile_holds({"services": services})  # the lock let go: its turn now
    assert await inventory.remaining(services, stuck_world.session["id"], stuck["id"]) == 5


async def test_a_request_that_resumes_after_its_hold_was_given_back_places_its_order_once(
    app, client, admin_token, db, monkeypatch
):
    """The hold was recounted away while the request was stalled between reserving and
    writing: its write is refused (the counter's generation moved on), and it reserves
    again. One order, its units counted once: nothing oversold."""
    from commerce.stock.tasks import reconcile_holds

    world, listing = await live_listing(client, admin_token, stock=3)
    buyer = await register(client)
    services = app.state.services
    sid = world.session["id"]
    stalled, resume = _stall_the_first_write(monkeypatch)
    _ids_made_long_ago(monkeypatch)
    placing = asyncio.create_task(order(client, buyer, listing["id"], 2, key="slow"))
    await asyncio.wait_for(stalled.wait(), 10)
    assert await inventory.remaining(services, sid, listing["id"]) == 1
    assert await reconcile_holds({"services": services}) >= 1
    assert await inventory.remaining(services, sid, listing["id"]) == 3
    # Meanwhile another buyer takes two of the three units back in stock.
    other = await register(client)
    assert (await order(client, other, listing["id"], 2)).status_code == 201
    resume.set()
    r = await placing
    assert r.status_code == 409 and r.json()["error"]["code"] == "sold_out", r.text
    async with db.reader() as s:
        rows = (
            await s.execute(
                text("SELECT buyer_id, quantity FROM orders WHERE listing_id = :l"),
                {"l": listing["id"]},
            )
        ).all()
    assert [(b, q) for b, q in rows] == [(other.id, 2)], "the stalled order never landed"
    assert await inventory.remaining(services, sid, listing["id"]) == 1
    await assert_ledger_invariants(db)


async def test_a_resend_finds_for_itself_that_its_first_send_can_never_land(
    app, client, admin_token
):
    """A rebuild took the hold of a request that died, and nothing forgot its key (the
    cron's forgetting was lost, or an older process rebuilt): the resend sees the counter
    moved past the first send's generation with no order written, and tries afresh."""
    world, listing = await live_listing(client, admin_token, stock=5)
    buyer = await register(client)
    services = app.state.services
    sid = world.session["id"]
    await inventory.rebuild(services, session_id=sid, inventory_id=listing["id"], stock=5)
    await _reserve_unwritten(services, sid, listing["id"], buyer, "died", 2, 0)
    assert await inventory.recount(
        services, session_id=sid, inventory_id=listing["id"], stock=5
    )  # drops the hold; its key is still recorded
    r = await order(client, buyer, listing["id"], 2, key="died")
    assert r.status_code == 201, r.text
    assert await inventory.remaining(services, sid, listing["id"]) == 3


async def _with_a_running_deal(client, admin_token, deal_stock: int):  # type: ignore[no-untyped-def]
    """A live listing of 5 at 95,000, and a flash deal on it running for a minute."""
    world, listing = await live_listing(client, admin_token, stock=5)
    r = await client.post(
        f"/api/sessions/{world.session['id']}/flash-deals",
        headers=world.host.headers,
        json={
            "listing_id": listing["id"],
            "price": 50_000,
            "stock": deal_stock,
            "countdown_s": 0,
            "duration_s": 60,
        },
    )
    assert r.status_code == 201, r.text
    return world, listing, r.json()["id"]


async def test_a_first_send_is_judged_dead_by_the_counter_it_reserved_in_not_the_resends(
    app, client, admin_token
):
    """A deal that begins or ends between two sends puts them on different counters,
    whose generations are not comparable: the listing's moving on says nothing of an
    order reserved in the deal's."""
    from commerce.orders.schemas import fingerprint
    from core.ids import new_id

    world, listing, deal_id = await _with_a_running_deal(client, admin_token, deal_stock=2)
    sid, lid = world.session["id"], listing["id"]
    services = app.state.services
    buyer = await register(client)
    for counter, stock in ((deal_id, 2), (lid, 5)):
        await inventory.rebuild(services, session_id=sid, inventory_id=counter, stock=stock)
    first = new_id("ord")
    took = await inventory.reserve(
        services,
        session_id=sid,
        inventory_id=deal_id,
        buyer_id=buyer.id,
        idempotency_key="k",
        fingerprint=fingerprint(lid, 1, None),
        quantity=1,
        limit=None,
        order_id=first,
        expires_ms=int((time.time() + 600) * 1000),
    )
    prior = inventory.Reservation(
        "dup", prior_order_id=first, prior_generation=took.generation, prior_fingerprint=""
    )
    for _ in range(2):  # the listing's counter moves well past the deal's generation
        await inventory.recount(services, session_id=sid, inventory_id=lid, stock=5)
    assert not await order_service._prior_is_dead(services, sid, buyer.id, "k", prior)
    # The deal's own counter moving on is what tells: the first send can never land.
    await inventory.recount(services, session_id=sid, inventory_id=deal_id, stock=2)
    # Not knowing the counter (a record an older process made, or a note naming another
    # order of the key) is not knowing: the resend waits as before.
    made_in = services.keys.session(sid, "idem_at")
    field = inventory.idem_field(buyer.id, "k")
    for note in (None, f"{new_id('ord')}|{deal_id}"):
        if note is None:
            await services.redis.hdel(made_in, field)
        else:
            await services.redis.hset(made_in, field, note)
        assert not await order_service._prior_is_dead(services, sid, buyer.id, "k", prior)
    await services.redis.hset(made_in, field, f"{first}|{deal_id}")
    assert await order_service._prior_is_dead(services, sid, buyer.id, "k", prior)
    idem = services.keys.session(sid, "idem")
    assert await services.redis.hget(idem, field) is None


async def test_a_hold_that_never_landed_in_a_deal_that_has_ended_is_given_back_and_its_key_freed(
    app, client, admin_token, db
):
    from commerce.stock.tasks import ORPHANED_AFTER_S, reconcile_holds

    world, _, deal_id = await _with_a_running_deal(client, admin_token, deal_stock=3)
    sid = world.session["id"]
    services = app.state.services
    buyer = await register(client)
    await inventory.rebuild(services, session_id=sid, inventory_id=deal_id, stock=3)
    await _reserve_unwritten(services, sid, deal_id, buyer, "in-deal", 2, ORPHANED_AFTER_S + 1)
    async with db.transaction() as s:
        await s.execute(
            text(
                "UPDATE flash_deals SET starts_at = now() - interval '2 minutes',"
                " ends_at = now() - interval '1 minute' WHERE id = :d"
            ),
            {"d": deal_id},
        )
    assert await reconcile_holds({"services": services}) >= 1
    assert await inventory.remaining(services, sid, deal_id) == 3
    field = inventory.idem_field(buyer.id, "in-deal")
    assert await services.redis.hget(services.keys.session(sid, "idem"), field) is None


async def test_a_sessions_idempotency_records_go_a_day_after_it_ends_and_its_counters_stay(
    app, client, admin_token
):
    world, listing = await live_listing(client, admin_token, stock=5)
    sid = world.session["id"]
    buyer = await register(client)
    assert (await order(client, buyer, listing["id"], 2)).status_code == 201
    services = app.state.services
    records = [services.keys.session(sid, name) for name in ("idem", "idem_at")]
    assert [await services.redis.ttl(k) for k in records] == [-1, -1]  # kept while live
    r = await client.post(f"/api/sessions/{sid}/end", headers=world.host.headers)
    assert r.status_code == 200, r.text
    for k in records:
        assert 0 < await services.redis.ttl(k) <= inventory.KEYS_AFTER_END_S
    assert await services.redis.ttl(services.keys.session(sid, "inv", listing["id"])) == -1
    assert await inventory.remaining(services, sid, listing["id"]) == 3
    r = await order(client, buyer, listing["id"], 2)
    assert r.json()["error"]["code"] == "session_not_live"


async def test_a_resend_of_an_order_that_lapsed_is_answered_with_it_after_its_hold_is_freed(
    app, client, admin_token, db, monkeypatch
):
    """The cron gives back the hold of an order that expired (its release was lost), but
    keeps its key: the resend is that order, not a new one or a `sold_out`."""
    from commerce.stock.tasks import reconcile_holds

    _ids_made_long_ago(monkeypatch)
    _, listing = await live_listing(client, admin_token, stock=5)
    buyer, other = await register(client), await register(client)
    lapsed = (await order(client, buyer, listing["id"], 2, key="k-lapsed")).json()["order"]
    async with db.transaction() as s:
        await s.execute(
            text("UPDATE orders SET status = 'expired' WHERE id = :o"), {"o": lapsed["id"]}
        )
    await reconcile_holds({"services": app.state.services})
    assert (await order(client, other, listing["id"], 5)).status_code == 201
    r = await order(client, buyer, listing["id"], 2, key="k-lapsed")
    assert r.status_code == 200, r.text
    assert (r.json()["order"]["id"], r.json()["order"]["status"]) == (lapsed["id"], "expired")


async def test_a_duplicate_waiting_through_a_recount_gets_the_one_order_its_key_makes(
    app, client, admin_token, db, monkeypatch
):
    """The first send stalls between reserving and writing; its duplicate (as from another
    process) waits; the cron recounts the counter. One order comes of the key, both sends
    answer with it, and its units are counted once."""
    from commerce.stock.tasks import reconcile_holds
    from core.auth import Principal

    world, listing = await live_listing(client, admin_token, stock=4)
    buyer = await register(client)
    services = app.state.services
    sid = world.session["id"]
    stalled, resume = _stall_the_first_write(monkeypatch)
    _ids_made_long_ago(monkeypatch)
    first = asyncio.create_task(order(client, buyer, listing["id"], 1, key="twice"))
    await asyncio.wait_for(stalled.wait(), 10)
    # Not through this process's own map of sends in progress: as another process would.
    principal = Principal(buyer.id, frozenset({"viewer"}))
    duplicate = asyncio.create_task(
        order_service._place(services, principal, listing["id"], 1, "twice", None)
    )
    await asyncio.sleep(0.3)  # it is waiting for the first send's answer
    assert not duplicate.done()
    assert await reconcile_holds({"services": services}) >= 1
    resume.set()
    r = await first
    (placed, _created) = await duplicate
    assert r.status_code in (200, 201), r.text
    assert r.json()["order"]["id"] == placed["id"]
    async with db.reader() as s:
        n = await s.scalar(
            text("SELECT count(*) FROM orders WHERE listing_id = :l"), {"l": listing["id"]}
        )
    assert n == 1
    assert await inventory.remaining(services, sid, listing["id"]) == 3
    await assert_ledger_invariants(db)


async def test_a_hold_whose_order_no_longer_holds_stock_is_given_back(
    app, client, admin_token, db, monkeypatch
):
    """Its release was lost (the process died after the order expired): the cron gives the
    units back; expired is final, so that is safe at any time."""
    from commerce.stock.tasks import reconcile_holds

    _ids_made_long_ago(monkeypatch)
    world, listing = await live_listing(client, admin_token, stock=9)
    buyer = await register(client)
    kept = (await order(client, buyer, listing["id"], 2)).json()["order"]
    lapsed = (await order(client, buyer, listing["id"], 3)).json()["order"]
    services = app.state.services
    sid = world.session["id"]
    async with db.transaction() as s:  # expired, and its hold never given back
        await s.execute(
            text("UPDATE orders SET status = 'expired' WHERE id = :o"), {"o": lapsed["id"]}
        )
    assert await inventory.remaining(services, sid, listing["id"]) == 4
    assert await reconcile_holds({"services": services}) >= 1
    assert await inventory.remaining(services, sid, listing["id"]) == 7
    await reconcile_holds({"services": services})
    assert await inventory.remaining(services, sid, listing["id"]) == 7  # the reserved holds on
    assert kept["status"] == "reserved"


async def test_an_order_whose_total_would_pass_the_largest_amount_is_400_and_holds_nothing(
    client, admin_token
):
    _, listing = await live_listing(client, admin_token, stock=1000, price=10**13)
    buyer = await register(client)
    r = await order(client, buyer, listing["id"], 2)
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "quantity"
    assert (await order(client, buyer, listing["id"], 1)).status_code == 201
