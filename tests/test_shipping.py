"""The produce delivered: buyers' addresses, farmers' shipping fees (once per box, by weight
and zone, outside the pledge), a session's sales boxed per buyer and farmer, packing lists,
the box's moves seen live by its buyer, completion, and a failed delivery refunded; the
farmer's payout and the charity's spending wait for completion."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from commerce.orders.writer import fee_sql
from commerce.shipping import zones
from core.db import Database
from core.settings import Settings
from panen.flows.settle import settle_all
from tests.api import (
    ADDRESS,
    Actor,
    World,
    add_address,
    live_listing,
    order,
    pay,
    register,
    user_with_roles,
)
from tests.checks import assert_charity_books, assert_ledger_invariants, assert_log_gap_free
from tests.conftest import process_env
from tests.live_clients import Viewer
from tests.processes import Server, Worker, running

# Garut to Bandung is "jawa"; anywhere else the farmer's `*` rate.
RATES = [
    {"zone": "jawa", "base_fee": 10_000, "per_kg_fee": 5_000},
    {"zone": "*", "base_fee": 30_000, "per_kg_fee": 12_000},
]


async def set_rates(client: httpx.AsyncClient, world: World, rates: list[dict[str, Any]]) -> None:
    r = await client.put(
        f"/api/farmers/{world.farmer_id}/shipping",
        headers=world.farmer.headers,
        json={"currency": "IDR", "rates": rates},
    )
    assert r.status_code == 200, r.text


async def shipments_of(client: httpx.AsyncClient, actor: Actor) -> list[dict[str, Any]]:
    r = await client.get("/api/me/shipments", headers=actor.headers)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["shipments"]
    return found


async def move(
    client: httpx.AsyncClient, actor: Actor, shipment_id: str, status: str, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/api/shipments/{shipment_id}/status",
        headers=actor.headers,
        json={"status": status, **extra},
    )


async def get_order(client: httpx.AsyncClient, buyer: Actor, order_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/orders/{order_id}", headers=buyer.headers)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()["order"]
    return found


# --- Addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone", "12345"),
        ("phone", "+1 415 555 0100"),
        ("postal_code", "4013"),
        ("postal_code", "04013"),
        ("postal_code", "4013a"),
        ("province", "Atlantis"),
        ("recipient", ""),
        ("street", "Jl. Merdeka 1\nPENGIRIM: palsu"),
        ("city", "x" * 121),
        ("district", 7),
        ("notes", "a" * 201),
        ("is_default", "yes"),
    ],
)
async def test_a_bad_address_is_400_naming_the_field_and_saves_nothing(client, field, value):
    buyer = await register(client, address=False)
    r = await client.post(
        "/api/me/addresses", headers=buyer.headers, json={**ADDRESS, field: value}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"]["field"] == field
    r = await client.get("/api/me/addresses", headers=buyer.headers)
    assert r.json()["addresses"] == []


async def test_addresses_are_normalised_the_first_is_default_and_an_edit_gets_a_new_id(client):
    buyer = await register(client, address=False)
    first = await add_address(
        client, buyer, phone="+62 812 3456 7890", province="jabar", label="Rumah"
    )
    assert (first["phone"], first["province"], first["zone"]) == (
        "+6281234567890",
        "Jawa Barat",
        "jawa",
    )
    assert first["is_default"] is True  # the first one
    office = await add_address(client, buyer, province="DKI Jakarta", label="Kantor")
    assert office["is_default"] is False
    r = await client.post(f"/api/me/addresses/{office['id']}/default", headers=buyer.headers)
    assert r.status_code == 200 and r.json()["address"]["is_default"] is True
    listed = (await client.get("/api/me/addresses", headers=buyer.headers)).json()["addresses"]
    assert [a["id"] for a in listed] == [office["id"], first["id"]]  # the default first
    # An edit is a new address that keeps the default; the old id is gone from the list.
    r = await client.put(
        f"/api/me/addresses/{office['id']}",
        headers=buyer.headers,
        json={**ADDRESS, "province": "Bali", "label": "Kantor"},
    )
    assert r.status_code == 200, r.text
    edited = r.json()["address"]
    assert (
        edited["id"] != office["id"]
        and edited["is_default"]
        and edited["zone"] == ("bali_nusa_tenggara")
    )
    r = await client.delete(f"/api/me/addresses/{edited['id']}", headers=buyer.headers)
    assert r.status_code == 200
    listed = (await client.get("/api/me/addresses", headers=buyer.headers)).json()["addresses"]
    assert [(a["id"], a["is_default"]) for a in listed] == [(first["id"], True)]
    # Nobody else's address can be touched.
    other = await register(client)
    for r in (
        await client.delete(f"/api/me/addresses/{first['id']}", headers=other.headers),
        await client.post(f"/api/me/addresses/{first['id']}/default", headers=other.headers),
        await client.put(f"/api/me/addresses/{first['id']}", headers=other.headers, json=ADDRESS),
    ):
        assert r.status_code == 404, r.text


async def test_a_buyer_without_an_address_is_asked_for_one_and_no_stock_is_held(
    client, admin_token
):
    _, listing = await live_listing(client, admin_token, stock=3)
    buyer = await register(client, address=False)
    r = await order(client, buyer, listing["id"], 3)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "address_required"
    assert r.json()["error"]["details"]["field"] == "address_id"
    await add_address(client, buyer)
    r = await order(client, buyer, listing["id"], 3)  # all three are still there
    assert r.status_code == 201, r.text


async def test_an_order_to_someone_elses_or_an_unshipped_zone_is_refused_naming_the_address(
    client, admin_token
):
    world, listing = await live_listing(client, admin_token, stock=5)
    await set_rates(client, world, [RATES[0]])  # Java only
    buyer, other = await register(client), await register(client)
    theirs = (await client.get("/api/me/addresses", headers=other.headers)).json()["addresses"]
    r = await client.post(
        "/api/orders",
        headers={**buyer.headers, "Idempotency-Key": "k-theirs"},
        json={"listing_id": listing["id"], "quantity": 1, "address_id": theirs[0]["id"]},
    )
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "address_id"
    papua = await add_address(client, buyer, province="Papua")
    r = await client.post(
        "/api/orders",
        headers={**buyer.headers, "Idempotency-Key": "k-papua"},
        json={"listing_id": listing["id"], "quantity": 1, "address_id": papua["id"]},
    )
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert (err["code"], err["details"]["field"], err["details"]["zone"]) == (
        "not_shippable",
        "address_id",
        "maluku_papua",
    )
    r = await client.get(
        f"/api/shipping/quote?listing_id={listing['id']}&address_id={papua['id']}",
        headers=buyer.headers,
    )
    assert r.status_code == 200 and r.json()["shippable"] is False
    r = await order(client, buyer, listing["id"], 5)  # nothing was held by the refusals
    assert r.status_code == 201, r.text


async def test_rates_are_the_farmers_to_set_and_bad_ones_are_400(client, admin_token):
    world, _ = await live_listing(client, admin_token)
    stranger = await register(client)
    r = await client.put(
        f"/api/farmers/{world.farmer_id}/shipping",
        headers=stranger.headers,
        json={"rates": RATES},
    )
    assert r.status_code == 403
    for bad, field in (
        ([{"zone": "mars", "base_fee": 1}], "rates.0.zone"),
        ([{"zone": "jawa", "base_fee": -1}], "rates.0.base_fee"),
        ([{"zone": "jawa", "base_fee": 1}, {"zone": "jawa", "base_fee": 2}], "rates"),
    ):
        r = await client.put(
            f"/api/farmers/{world.farmer_id}/shipping",
            headers=world.farmer.headers,
            json={"rates": bad},
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["details"]["field"] == field
    r = await client.get(f"/api/farmers/{world.farmer_id}/shipping")
    assert r.json()["free"] is True and r.json()["rates"] == []


# --- Fees -----------------------------------------------------------------------------------


async def test_the_order_writers_fee_is_the_same_function_as_the_quotes(db: Database):
    cases = [
        (b, k, w, paid)
        for b in (0, 9_000)
        for k in (0, 4_000)
        for w in (0, 1, 999, 1000, 1001, 25_500)
        for paid in (False, True)
    ]
    async with db.reader() as s:
        for base, per_kg, weight, paid in cases:
            got = await s.scalar(
                text(
                    f"SELECT {fee_sql('CAST(:w AS bigint)', 'CAST(:p AS boolean)')}"  # noqa: S608
                    " FROM (SELECT CAST(:b AS bigint) AS base, CAST(:k AS bigint) AS per_kg) x"
                ),
                {"w": weight, "b": base, "k": per_kg, "p": paid},
            )
            assert got == zones.order_fee(base, per_kg, weight, paid), (base, per_kg, weight)


async def test_shipping_is_charged_once_per_box_by_weight_and_zone_outside_pledge_and_fee(
    app, client, admin_token, db
):
    world, listing = await live_listing(client, admin_token, stock=20, pledge_bps=1000)
    await set_rates(client, world, RATES)
    buyer = await register(client)  # in Bandung: "jawa"
    # The quote before buying: 2 kg to Java is 10,000 + 2 × 5,000.
    r = await client.get(
        f"/api/shipping/quote?listing_id={listing['id']}&quantity=2", headers=buyer.headers
    )
    assert r.status_code == 200, r.text
    q = r.json()
    assert (q["zone"], q["weight_g"], q["shipping_fee"], q["amount"]) == (
        "jawa",
        2000,
        20_000,
        2 * 95_000 + 20_000,
    )
    first = (await order(client, buyer, listing["id"], 2)).json()["order"]
    assert (first["shipping_fee"], first["payment"]["amount"]) == (20_000, 190_000 + 20_000)
    assert first["pledge_amount"] == 19_000  # 10% of the produce, none of the postage
    # Until an order of the box is paid, the next one carries the base too …
    r = await client.get(
        f"/api/shipping/quote?listing_id={listing['id']}&quantity=1", headers=buyer.headers
    )
    assert r.json()["shipping_fee"] == 10_000 + 5_000
    # … once it is, an order to the same box adds only its kilogram; another address is
    # its own box.
    assert (await pay(client, buyer, first)).status_code == 200
    second = (await order(client, buyer, listing["id"], 1)).json()["order"]
    assert second["shipping_fee"] == 5_000
    bali = await add_address(client, buyer, province="Bali")
    r = await client.post(
        "/api/orders",
        headers={**buyer.headers, "Idempotency-Key": "to-bali"},
        json={"listing_id": listing["id"], "quantity": 1, "address_id": bali["id"]},
    )
    third = r.json()["order"]
    assert (third["address_id"], third["shipping_fee"]) == (bali["id"], 30_000 + 12_000)
    # The same key naming another address is another order: 409.
    r = await client.post(
        "/api/orders",
        headers={**buyer.headers, "Idempotency-Key": "to-bali"},
        json={"listing_id": listing["id"], "quantity": 1},
    )
    assert r.status_code in (200, 409)
    for placed in (second, third):
        assert (await pay(client, buyer, placed)).status_code == 200
    await settle_all(app.state.services)
    boxes = await shipments_of(client, buyer)
    by_address = {b["street"] + b["province"]: b for b in boxes}
    assert len(boxes) == 2 and len(by_address) == 2
    java = next(b for b in boxes if b["province"] == "Jawa Barat")
    assert sorted(i["order_id"] for i in java["items"]) == sorted([first["id"], second["id"]])
    assert (java["weight_g"], java["shipping_fee"], java["status"]) == (3000, 25_000, "packing")
    assert java["shipping_fee"] == zones.fee(10_000, 5_000, 3000)  # as one parcel
    # The farmer is owed their share and the postage; the charity exactly the pledges.
    totals = (
        await client.get(f"/api/farmers/{world.farmer_id}/totals", headers=world.farmer.headers)
    ).json()
    assert totals["pledged"] == 19_000 + 9_500 + 9_500
    owed = sum(o["farmer_amount"] + o["shipping_fee"] for o in (first, second, third))
    assert totals["payout_pending"] == owed
    await assert_ledger_invariants(db)
    await assert_charity_books(db, world.charity["id"])


# --- Boxes: who sees and moves them, and where the money goes --------------------------------


async def settled_box(app, client, admin_token, **listing: Any) -> tuple[World, Actor, dict, list]:
    """A live session whose buyer paid two orders that settled into one box."""
    world, placed_listing = await live_listing(
        client, admin_token, stock=20, pledge_bps=1000, **listing
    )
    await set_rates(client, world, RATES)
    buyer = await register(client)
    placed = [(await order(client, buyer, placed_listing["id"], n)).json()["order"] for n in (1, 2)]
    for p in placed:
        assert (await pay(client, buyer, p)).status_code == 200
    await settle_all(app.state.services)
    [box] = await shipments_of(client, buyer)
    return world, buyer, box, placed


async def test_only_its_farmer_moves_a_box_only_its_buyer_sees_it_and_moves_follow_the_lifecycle(
    app, client, admin_token
):
    world, buyer, box, _ = await settled_box(app, client, admin_token)
    other_world, other_buyer, _, _ = await settled_box(app, client, admin_token)
    # Another buyer, another farmer: neither sees it (404) nor moves it.
    for actor in (other_buyer, other_world.farmer):
        r = await client.get(f"/api/shipments/{box['id']}", headers=actor.headers)
        assert r.status_code == 404
        r = await move(client, actor, box["id"], "packed")
        assert r.status_code == 404
    r = await client.get(
        f"/api/farmers/{world.farmer_id}/packing-list?session_id={world.session['id']}",
        headers=other_world.farmer.headers,
    )
    assert r.status_code == 403
    r = await client.get(
        f"/api/farmers/{world.farmer_id}/shipments", headers=other_world.farmer.headers
    )
    assert r.status_code == 403
    # Its buyer sees it but may only confirm receipt, and not before it ships.
    r = await client.get(f"/api/shipments/{box['id']}", headers=buyer.headers)
    assert r.status_code == 200 and r.json()["shipment"]["history"][0]["status"] == "packing"
    assert (await move(client, buyer, box["id"], "shipped")).status_code == 403
    r = await move(client, buyer, box["id"], "completed")
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_transition"
    # Shipping needs a courier and a tracking number; a bad one names the field.
    r = await move(client, world.farmer, box["id"], "shipped", courier="JNE")
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "tracking_number"
    r = await move(
        client, world.farmer, box["id"], "shipped", courier="JNE", tracking_number="<script>"
    )
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "tracking_number"
    r = await move(client, world.farmer, box["id"], "teleported")
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "status"
    assert (await move(client, world.farmer, box["id"], "packed")).status_code == 200
    assert (await move(client, world.farmer, box["id"], "packed")).status_code == 200  # again
    r = await move(
        client, world.farmer, box["id"], "shipped", courier="JNE", tracking_number="JN-0012345"
    )
    assert r.status_code == 200, r.text
    shipped = r.json()["shipment"]
    assert (shipped["status"], shipped["courier"], shipped["tracking_number"]) == (
        "shipped",
        "JNE",
        "JN-0012345",
    )
    r = await move(client, world.farmer, box["id"], "packed")
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_transition"
    assert (await move(client, world.farmer, box["id"], "completed")).status_code == 403


async def test_a_pledge_is_spendable_and_a_share_payable_only_once_its_box_completes(
    app, client, admin_token, db
):
    world, buyer, box, placed = await settled_box(app, client, admin_token)
    pledged = sum(p["pledge_amount"] for p in placed)
    url = f"/api/charities/{world.charity['id']}/disbursements"
    body = {"amount": pledged, "purpose": "Love Package", "evidence_sha256": "b" * 64}
    r = await client.post(url, headers=world.charity_admin.headers, json=body)
    assert r.status_code == 409 and r.json()["error"]["details"]["available"] == 0
    r = await client.get(f"/api/farmers/{world.farmer_id}/payouts", headers=world.farmer.headers)
    [bal] = r.json()["balances"]
    owed = sum(p["farmer_amount"] + p["shipping_fee"] for p in placed)
    assert (bal["owed"], bal["awaiting_delivery"]) == (owed, owed)
    await move(client, world.farmer, box["id"], "shipped", courier="J&T", tracking_number="JT1234")
    r = await move(client, buyer, box["id"], "completed")  # "Pesanan diterima"
    assert r.status_code == 200, r.text
    assert {i["status"] for i in r.json()["shipment"]["items"]} == {"completed"}
    r = await client.post(f"/api/orders/{placed[0]['id']}/cancel", headers=world.host.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "order_completed"
    [bal] = (
        await client.get(f"/api/farmers/{world.farmer_id}/payouts", headers=world.farmer.headers)
    ).json()["balances"]
    assert (bal["owed"], bal["awaiting_delivery"]) == (owed, 0)
    r = await client.post(url, headers=world.charity_admin.headers, json=body)
    assert r.status_code == 201, r.text
    await assert_ledger_invariants(db)
    await assert_charity_books(db, world.charity["id"])


async def test_a_box_refused_at_the_door_refunds_its_orders_pledge_match_and_points(
    app, client, admin_token, db
):
    world, buyer, box, placed = await settled_box(app, client, admin_token)
    report = f"/api/charities/{world.charity['id']}/report"
    before = (await client.get(report)).json()["currencies"]["IDR"]
    points_before = (await client.get("/api/me/points", headers=buyer.headers)).json()["balance"]
    assert points_before > 0  # buying earned points
    await move(
        client, world.farmer, box["id"], "shipped", courier="SiCepat", tracking_number="SC99"
    )
    r = await move(client, world.farmer, box["id"], "failed", reason="ditolak penerima")
    assert r.status_code == 200, r.text
    failed = r.json()["shipment"]
    assert (failed["status"], failed["failure_reason"]) == ("failed", "ditolak penerima")
    for p in placed:
        got = await get_order(client, buyer, p["id"])
        assert got["status"] == "refunded"
        assert got["payment"]["status"] in ("refunding", "refunded")
    after = (await client.get(report)).json()["currencies"]["IDR"]
    assert after["reversals"] - before["reversals"] == sum(p["pledge_amount"] for p in placed)
    assert after["balance"] == before["balance"] - sum(p["pledge_amount"] for p in placed)
    assert (await client.get("/api/me/points", headers=buyer.headers)).json()["balance"] == 0
    r = await move(client, world.farmer, box["id"], "failed", reason="again")
    assert r.status_code == 200  # already failed: nothing more happens
    totals = (
        await client.get(f"/api/farmers/{world.farmer_id}/totals", headers=world.farmer.headers)
    ).json()
    assert (totals["units_sold"], totals["payout_pending"]) == (0, 0)
    await assert_ledger_invariants(db)
    await assert_charity_books(db, world.charity["id"])
    await assert_log_gap_free(db)


async def test_a_box_whose_last_order_is_refunded_before_it_ships_is_cancelled(
    app, client, admin_token, db
):
    world, buyer, box, placed = await settled_box(app, client, admin_token)
    for p in placed:
        r = await client.post(f"/api/orders/{p['id']}/cancel", headers=world.host.headers)
        assert r.status_code == 200, r.text
    r = await client.get(f"/api/shipments/{box['id']}", headers=buyer.headers)
    assert r.json()["shipment"]["status"] == "cancelled"
    await assert_ledger_invariants(db)


async def test_the_packing_list_says_what_to_pack_for_whom_as_json_and_safe_csv(
    app, client, admin_token
):
    world, listing = await live_listing(client, admin_token, stock=50)
    buyers = [await register(client) for _ in range(3)]
    mischief = await register(client, address=False)
    await add_address(client, mischief, recipient='=HYPERLINK("http://x")', province="Aceh")
    sneaky = await register(client, address=False)
    await add_address(client, sneaky, recipient="\u200b=cmd|' /C calc'!A0", province="Bali")
    for n, b in enumerate([*buyers, mischief, sneaky], start=1):
        placed = (await order(client, b, listing["id"], n)).json()["order"]
        assert (await pay(client, b, placed)).status_code == 200
    await settle_all(app.state.services)
    url = f"/api/farmers/{world.farmer_id}/packing-list?session_id={world.session['id']}"
    r = await client.get(url, headers=world.farmer.headers)
    assert r.status_code == 200, r.text
    packing = r.json()
    assert (packing["boxes"], packing["units"]) == (5, 1 + 2 + 3 + 4 + 5)
    assert packing["by_product"] == [
        {"product_name": "Kopi Arabika", "unit": "250 g", "quantity": 15}
    ]
    assert packing["shipments"][0]["province"] == "Aceh"  # sorted by where they go
    r = await client.get(
        url.replace("packing-list", "packing-list.csv"), headers=world.farmer.headers
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sum(int(row["quantity"]) for row in rows) == 15
    assert any(row["recipient"].startswith("'=") for row in rows)  # never a formula
    assert any(row["recipient"].startswith("'\u200b=") for row in rows)  # nor behind a ZWSP
    assert all(row["notes"] == "" for row in rows)  # an empty cell stays empty
    r = await client.get(url + "&boxes=all", headers=world.farmer.headers)
    assert r.json()["boxes"] == 5
    r = await client.get(
        f"/api/farmers/{world.farmer_id}/packing-list?session_id=nope",
        headers=world.farmer.headers,
    )
    assert r.status_code == 404


async def test_cancelling_an_unpaid_order_never_leaves_its_box_short_of_the_base(
    app, client, admin_token
):
    world, listing = await live_listing(client, admin_token, stock=20)
    await set_rates(client, world, RATES)
    buyer = await register(client)
    cheap = (await order(client, buyer, listing["id"], 1)).json()["order"]
    big = (await order(client, buyer, listing["id"], 5)).json()["order"]
    assert big["shipping_fee"] == 10_000 + 5 * 5_000  # nothing of the box paid yet
    r = await client.post(f"/api/orders/{cheap['id']}/cancel", headers=buyer.headers)
    assert r.json()["order"]["status"] == "cancelled"
    assert (await pay(client, buyer, big)).status_code == 200
    await settle_all(app.state.services)
    [box] = await shipments_of(client, buyer)
    assert box["shipping_fee"] >= zones.fee(10_000, 5_000, box["weight_g"])


async def test_orders_priced_at_the_same_moment_never_leave_their_box_short(
    app, client, admin_token
):
    world, _ = await live_listing(client, admin_token, stock=100)
    await set_rates(client, world, [{"zone": "*", "base_fee": 10_000, "per_kg_fee": 2_000}])
    r = await client.post(
        "/api/products",
        headers=world.farmer.headers,
        json={
            "farmer_id": world.farmer_id,
            "name": "Kopi",
            "unit": "300 g",
            "unit_price": 10_000,
            "currency": "IDR",
            "weight_g": 300,
        },
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/api/sessions/{world.session['id']}/listings",
        headers=world.host.headers,
        json={"product_id": r.json()["id"], "price": 10_000, "stock": 100},
    )
    assert r.status_code == 201, r.text
    light = r.json()["id"]
    buyer = await register(client)
    paid = (await order(client, buyer, light, 1)).json()["order"]
    assert (await pay(client, buyer, paid)).status_code == 200
    answers = await asyncio.gather(*(order(client, buyer, light, 1) for _ in range(20)))
    for a in answers:
        assert a.status_code == 201, a.text
        assert (await pay(client, buyer, a.json()["order"])).status_code == 200
    await settle_all(app.state.services)
    [box] = await shipments_of(client, buyer)
    assert box["weight_g"] == 21 * 300
    assert box["shipping_fee"] >= zones.fee(10_000, 2_000, box["weight_g"])


async def test_a_sale_settling_into_a_box_as_it_fails_is_refunded_with_it(
    app, client, admin_token, db, monkeypatch
):
    """Settling locks its order, then the box; failing a box reads its orders, locks them,
    then the box. A sale that settles in between is found under the box's lock."""
    from commerce.shipping import service as shipping_service
    from panen.flows.settle import _settle

    world, buyer, box, placed = await settled_box(app, client, admin_token)
    late = (await order(client, buyer, placed[0]["listing_id"], 1)).json()["order"]
    assert (await pay(client, buyer, late)).status_code == 200  # paid, not yet settled
    reads = shipping_service.order_ids_in
    settled_meanwhile = False

    async def read_then_settle(s: Any, shipment_id: str, statuses: Any) -> list[str]:
        nonlocal settled_meanwhile
        found = await reads(s, shipment_id, statuses)
        if not settled_meanwhile:  # the late sale settles into the box right after the read
            settled_meanwhile = True
            async with db.transaction() as other:
                assert await _settle(other, 1, only=late["id"]) == 1
        return found

    monkeypatch.setattr(shipping_service, "order_ids_in", read_then_settle)
    r = await move(client, world.farmer, box["id"], "failed", reason="hilang di jalan")
    assert r.status_code == 200, r.text
    assert settled_meanwhile
    items = {i["order_id"]: i["status"] for i in r.json()["shipment"]["items"]}
    assert items == {p["id"]: "refunded" for p in [*placed, late]}
    await assert_ledger_invariants(db)
    await assert_charity_books(db, world.charity["id"])


async def test_a_farmer_who_buys_their_own_produce_still_moves_the_box(app, client, admin_token):
    world, listing = await live_listing(client, admin_token, stock=5)
    await add_address(client, world.farmer)
    placed = (await order(client, world.farmer, listing["id"], 1)).json()["order"]
    assert (await pay(client, world.farmer, placed)).status_code == 200
    await settle_all(app.state.services)
    [box] = await shipments_of(client, world.farmer)
    assert (await move(client, world.farmer, box["id"], "packed")).status_code == 200
    shipped = {"courier": "JNE", "tracking_number": "J1234"}
    r = await move(client, world.farmer, box["id"], "shipped", **shipped)
    assert r.status_code == 200, r.text
    r = await move(client, world.farmer, box["id"], "completed")  # as its buyer
    assert r.status_code == 200 and r.json()["shipment"]["status"] == "completed"


# --- On real processes: a session's boxes delivered, completed, and one refused ----------------

COMPLETE_AFTER_S = 1


@pytest.fixture(scope="module")
def shipping_server(settings: Settings) -> Iterator[Server]:
    env = {**process_env(settings), "PANEN_COMPLETE_AFTER_S": str(COMPLETE_AFTER_S)}
    server = Server(env)
    with running(server, Worker(env)):
        yield server


@pytest.fixture
async def http(shipping_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=shipping_server.base, timeout=30) as c:
        yield c


async def until(check, what: str, within: float = 25.0) -> Any:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.2)


async def test_a_sessions_boxes_ship_deliver_and_complete_and_one_refused_is_refunded_live(
    http, shipping_server, admin_token, db
):
    world, listing = await live_listing(http, admin_token, stock=100, pledge_bps=1000)
    await set_rates(http, world, RATES)
    sponsor = await user_with_roles(http, admin_token, "sponsor")
    r = await http.post(
        f"/api/sessions/{world.session['id']}/matches",
        headers=sponsor.headers,
        json={"sponsor_name": "Bank Tani", "ratio_bps": 10_000, "cap": 10_000_000},
    )
    assert r.status_code == 201, r.text
    kept, refused = await register(http), await register(http)
    watcher = await Viewer.connect(shipping_server.ws, kept.token)
    assert (await watcher.subscribe("me"))["type"] == "subscribed"
    farmer_watch = await Viewer.connect(shipping_server.ws, world.farmer.token)
    subscribed = await farmer_watch.subscribe(f"farmer:{world.farmer_id}")
    assert subscribed["type"] == "subscribed"
    placed: dict[str, list[dict[str, Any]]] = {"kept": [], "refused": []}
    for name, buyer, sizes in (("kept", kept, (2, 3)), ("refused", refused, (4,))):
        for n in sizes:
            o = (await order(http, buyer, listing["id"], n)).json()["order"]
            assert (await pay(http, buyer, o)).status_code == 200
            placed[name].append(o)
    all_orders = placed["kept"] + placed["refused"]

    async def settled() -> bool:
        got = [
            await get_order(http, b, o["id"])
            for b, o in zip((kept, kept, refused), all_orders, strict=True)
        ]
        return all(o["status"] == "settled" for o in got)

    await until(settled, "every order settled")
    report_url = f"/api/charities/{world.charity['id']}/report"
    pledged = sum(o["pledge_amount"] for o in all_orders)
    report = (await http.get(report_url)).json()["currencies"]["IDR"]
    assert (report["pledges"], report["matched"]) == (pledged, pledged)  # matched 1:1
    packing = (
        await http.get(
            f"/api/farmers/{world.farmer_id}/packing-list?session_id={world.session['id']}",
            headers=world.farmer.headers,
        )
    ).json()
    assert (packing["boxes"], packing["units"]) == (2, 9)
    box = {s["buyer_id"]: s for s in packing["shipments"]}
    kept_box, refused_box = box[kept.id], box[refused.id]
    assert kept_box["shipping_fee"] == zones.fee(10_000, 5_000, 5_000)  # one parcel of 5 kg
    # Nothing may be paid out or spent before delivery.
    payouts = (
        await http.get(f"/api/farmers/{world.farmer_id}/payouts", headers=world.farmer.headers)
    ).json()["balances"][0]
    owed = sum(o["farmer_amount"] + o["shipping_fee"] for o in all_orders)
    assert (payouts["owed"], payouts["awaiting_delivery"], payouts["available"]) == (owed, owed, 0)

    # The kept box: packed, shipped, delivered; the buyer hears each move live …
    for status, extra in (
        ("packed", {}),
        ("shipped", {"courier": "JNE", "tracking_number": "JNE12345678"}),
        ("delivered", {}),
    ):
        r = await move(http, world.farmer, kept_box["id"], status, **extra)
        assert r.status_code == 200, r.text
        frame = await watcher.expect(
            lambda f, st=status: (
                f["type"] == "ticker"
                and any(e["type"] == "shipment" and e["status"] == st for e in f["events"])
            ),
            within=10,
        )
        event = next(e for e in frame["events"] if e["type"] == "shipment")
        assert event["shipment_id"] == kept_box["id"]
    assert event["tracking_number"] == "JNE12345678"
    # … and, its window passed, it completes by itself: its money is final.
    await watcher.expect(
        lambda f: (
            f["type"] == "ticker"
            and any(e["type"] == "shipment" and e["status"] == "completed" for e in f["events"])
        ),
        within=15,
    )
    for o in placed["kept"]:
        assert (await get_order(http, kept, o["id"]))["status"] == "completed"

    # The refused box: shipped, then refused at the door: refunded, pledge and match reversed.
    await move(
        http, world.farmer, refused_box["id"], "shipped", courier="JNT", tracking_number="JT77"
    )
    r = await move(http, world.farmer, refused_box["id"], "failed", reason="ditolak di pintu")
    assert r.status_code == 200, r.text
    [lost] = placed["refused"]
    got = await get_order(http, refused, lost["id"])
    assert got["status"] == "refunded"
    report = (await http.get(report_url)).json()["currencies"]["IDR"]
    kept_pledge = sum(o["pledge_amount"] for o in placed["kept"])
    assert report["balance"] == 2 * kept_pledge  # the pledge and its 1:1 match
    payouts = (
        await http.get(f"/api/farmers/{world.farmer_id}/payouts", headers=world.farmer.headers)
    ).json()["balances"][0]
    kept_owed = sum(o["farmer_amount"] + o["shipping_fee"] for o in placed["kept"])
    assert (payouts["owed"], payouts["awaiting_delivery"]) == (kept_owed, 0)
    r = await http.post(
        f"/api/charities/{world.charity['id']}/disbursements",
        headers=world.charity_admin.headers,
        json={"amount": 2 * kept_pledge, "purpose": "Love Package", "evidence_sha256": "c" * 64},
    )
    assert r.status_code == 201, r.text
    totals = (
        await http.get(f"/api/farmers/{world.farmer_id}/totals", headers=world.farmer.headers)
    ).json()
    assert totals["units_sold"] == 5
    # The farmer's live totals folded the postage as the ledger did.
    await farmer_watch.expect(
        lambda f: (
            f["type"] == "ticker"
            and f["totals"].get("payout_pending") == totals["payout_pending"] == kept_owed
        ),
        within=10,
    )
    await farmer_watch.close()
    await watcher.close()
    await assert_ledger_invariants(db)
    await assert_charity_books(db, world.charity["id"])
    await assert_log_gap_free(db)
