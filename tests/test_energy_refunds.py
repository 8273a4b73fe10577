"""Refunds take energy points back, in the refund's own transaction; points already spent
leave a debt that blocks redeeming until it is earned back. Both books balance."""

from __future__ import annotations

from panen.flows.settle import settle_all
from tests.api import (
    grant,
    live_listing,
    live_world,
    make_pool,
    my_points,
    order,
    pay,
    redeem,
    register,
    services_of,
)
from tests.checks import assert_books_balance


async def test_a_settled_purchase_earns_points_and_its_refund_claws_them_back(
    app, client, admin_token, db
):
    world, listing = await live_listing(client, admin_token)
    buyer = await register(client, "buyer")
    r = await order(client, buyer, listing["id"], 2)
    assert r.status_code == 201, r.text
    placed = r.json()["order"]
    assert (await pay(client, buyer, placed)).status_code == 200
    await settle_all(services_of(app))
    assert (await my_points(client, buyer))["balance"] == 190  # Rp 190,000 at Rp 1,000 a point
    r = await client.post(f"/api/orders/{placed['id']}/cancel", headers=world.host.headers)
    assert r.status_code == 200, r.text
    after = await my_points(client, buyer)
    assert after["balance"] == 0 and after["redeemable"] == 0
    assert after["history"][0]["kind"] == "clawback_purchase"
    await assert_books_balance(db)


async def test_points_of_a_refund_already_spent_leave_a_debt_that_blocks_redeeming(
    app, client, admin_token, db
):
    world = await live_world(client, admin_token)
    pool = await make_pool(
        client,
        admin_token,
        world,
        charity_id=world.charity["id"],
        rate_points=1,
        rate_amount=10,
        cap=1_000_000,
    )
    buyer = await register(client, "spender")
    r = await client.get(f"/api/sessions/{world.session['id']}")
    placed = (await order(client, buyer, r.json()["listings"][0]["id"], 1)).json()["order"]
    assert (await pay(client, buyer, placed)).status_code == 200
    await settle_all(services_of(app))
    assert (await redeem(client, buyer, pool["id"], 90)).status_code == 201
    r = await client.post(f"/api/orders/{placed['id']}/cancel", headers=world.host.headers)
    assert r.status_code == 200, r.text
    got = await my_points(client, buyer)
    assert got["balance"] == -90 and got["redeemable"] == 0
    await grant(app, buyer, 50)
    r = await redeem(client, buyer, pool["id"], 10)
    assert r.status_code == 409 and r.json()["error"]["code"] == "insufficient_points"
    await assert_books_balance(db)
