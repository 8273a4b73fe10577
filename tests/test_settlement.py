"""Settlement by real `panen worker` processes: exactly once, even when a worker is killed."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import text

from core.db import Database
from core.services import Services
from panen.flows import settle as settlement
from panen.flows.settle import settle_all
from tests.api import live_listing, make_buyers, order, pay, register
from tests.checks import assert_ledger_invariants
from tests.conftest import process_env
from tests.processes import Server, Worker, running


@pytest.fixture(scope="module")
def env(settings):
    return process_env(settings)


async def counts(db: Database, listing_id: str) -> dict[str, int]:
    async with db.reader() as s:
        rows = await s.execute(
            text("SELECT status, count(*) FROM orders WHERE listing_id = :l GROUP BY status"),
            {"l": listing_id},
        )
        return {r[0]: int(r[1]) for r in rows}


async def buy_and_pay(base: str, buyers: list[dict[str, str]], listing_id: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        gate = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with gate:
                r = await http.post(
                    "/api/orders",
                    headers={**buyers[i], "Idempotency-Key": f"crash-{i}"},
                    json={"listing_id": listing_id, "quantity": 1},
                )
                assert r.status_code == 201, r.text
                pay = r.json()["order"]["payment"]["id"]
                r = await http.post(f"/api/payments/{pay}/sandbox/approve", headers=buyers[i])
                assert r.status_code == 200, r.text

        await asyncio.gather(*(one(i) for i in range(len(buyers))))


async def wait_for(predicate, limit_s: float = 60):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_a_worker_killed_mid_settlement_settles_every_order_exactly_once_after_restart(
    env, client, admin_token, db, settings
):
    n = 600
    _, listing = await live_listing(client, admin_token, stock=n, pledge_bps=750)
    buyers = await make_buyers(db, settings, n)
    server = Server(env)
    with running(server):
        await buy_and_pay(server.base, buyers, listing["id"])
    assert (await counts(db, listing["id"])) == {"paid": n}

    first = Worker(env).start()
    try:

        async def some_settled() -> bool:
            return (await counts(db, listing["id"])).get("settled", 0) > 0

        await wait_for(some_settled)
        first.kill()  # SIGKILL: no shutdown hook, a batch transaction may be half done
    finally:
        first.kill()
    at_kill = await counts(db, listing["id"])
    print("orders by status when the worker was killed:", at_kill)
    assert sum(at_kill.values()) == n

    with running(Worker(env)):

        async def all_settled() -> bool:
            return (await counts(db, listing["id"])) == {"settled": n}

        await wait_for(all_settled)
        # Asking again (a retried or duplicate job) moves no more money.
        services = await Services.start(settings, pool_size=1)
        try:
            await services.enqueue("settle_orders")
            await services.enqueue("settle_orders")
            await asyncio.sleep(1.0)
        finally:
            await services.close()

        async def outbox_drained() -> bool:
            async with db.reader() as s:
                left = await s.scalar(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
            return left == 0

        await wait_for(outbox_drained)
    async with db.reader() as s:
        sales = (
            await s.execute(
                text(
                    "SELECT t.order_id, count(*) FROM ledger_transactions t"
                    " JOIN orders o ON o.id = t.order_id"
                    " WHERE o.listing_id = :l AND t.kind = 'sale' GROUP BY t.order_id"
                ),
                {"l": listing["id"]},
            )
        ).all()
        history = await s.scalar(
            text(
                "SELECT count(*) FROM order_status_history h JOIN orders o ON o.id = h.order_id"
                " WHERE o.listing_id = :l AND h.status = 'settled'"
            ),
            {"l": listing["id"]},
        )
    assert len(sales) == n and all(c == 1 for _, c in sales), "each order settled once"
    assert history == n
    await assert_ledger_invariants(db)


async def test_a_backlog_calls_other_workers_in_and_a_busy_worker_turns_extra_settlers_away(
    app, client, admin_token, monkeypatch
):
    services: Services = app.state.services
    await settle_all(services)  # what earlier tests left paid
    _world, listing = await live_listing(client, admin_token, stock=10)
    for _ in range(3):
        buyer = await register(client)
        placed = (await order(client, buyer, listing["id"])).json()["order"]
        assert (await pay(client, buyer, placed)).status_code == 200
    calls: list[Services] = []

    async def recorded(s: Services) -> None:
        calls.append(s)

    monkeypatch.setattr(settlement, "call_for_settlement", recorded)
    monkeypatch.setattr(settlement, "BATCH", 1)
    state = services.shared("panen.flows.settle.settlers", settlement._Settlers)
    state.running = settlement.SETTLERS  # as if this worker were running its two already
    assert await settlement.settle_as_job(services) == 0
    assert state.again  # the running ones are told to look once more before stopping
    state.running = 0
    assert await settlement.settle_as_job(services) == 3
    assert len(calls) == 3  # each full batch (of one, here) asked idle workers to join
    assert not state.again and state.running == 0


async def test_an_order_the_database_refuses_to_settle_holds_back_no_other_order(
    client, admin_token, app, db
):
    poisoned, bad_listing = await live_listing(client, admin_token, stock=5, pledge_bps=1000)
    _, fine_listing = await live_listing(client, admin_token, stock=5)
    buyer = await register(client)
    # The first room's pledged sum is at what its column holds: adding to it overflows.
    async with db.transaction() as s:
        await s.execute(
            text(
                "INSERT INTO session_charity_totals (session_id, pledged, donated, matched)"
                " VALUES (:s, 9223372036854775807, 0, 0)"
                " ON CONFLICT (session_id) DO UPDATE SET pledged = EXCLUDED.pledged"
            ),
            {"s": poisoned.session["id"]},
        )
    bad = (await order(client, buyer, bad_listing["id"])).json()["order"]
    good = (await order(client, buyer, fine_listing["id"])).json()["order"]
    for placed in (bad, good):
        assert (await pay(client, buyer, placed)).status_code == 200
    await settle_all(app.state.services)
    async with db.reader() as s:
        status = dict(
            (
                await s.execute(
                    text("SELECT id, status FROM orders WHERE id IN (:a, :b)"),
                    {"a": bad["id"], "b": good["id"]},
                )
            ).all()
        )
    assert status == {good["id"]: "settled", bad["id"]: "paid"}
    assert bad["id"] in app.state.services.shared("panen.flows.settle.set_aside", set)
    await settle_all(app.state.services)  # and the next batch does not trip on it again
    # Once the cause is mended, the order settles like any other (after a restart, or
    # here by forgetting it was set aside).
    async with db.transaction() as s:
        await s.execute(
            text("UPDATE session_charity_totals SET pledged = 0 WHERE session_id = :s"),
            {"s": poisoned.session["id"]},
        )
    app.state.services.shared("panen.flows.settle.set_aside", set).discard(bad["id"])
    await settle_all(app.state.services)
    async with db.reader() as s:
        assert (
            await s.scalar(text("SELECT status FROM orders WHERE id = :a"), {"a": bad["id"]})
            == "settled"
        )
    await assert_ledger_invariants(db)
