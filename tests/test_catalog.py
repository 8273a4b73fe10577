from tests.api import auth, build_world, register, relogin, user_with_roles


async def test_a_farmer_lists_products_that_anyone_can_read(client, admin_token):
    world = await build_world(client, admin_token)
    r = await client.get(f"/api/products?farmer_id={world.farmer_id}")
    assert r.status_code == 200
    assert [p["id"] for p in r.json()["products"]] == [world.product["id"]]
    r = await client.get(f"/api/farmers/{world.farmer_id}")
    assert r.json()["region"] == "Garut"


async def test_only_that_farmer_or_an_admin_adds_products_to_a_farm(client, admin_token):
    world = await build_world(client, admin_token)
    other = await register(client, "farmer")
    r = await client.post(
        "/api/farmers",
        headers=auth(admin_token),
        json={"user_id": other.id, "name": "Other", "region": "Bogor"},
    )
    other = await relogin(client, other)
    product = {
        "farmer_id": world.farmer_id,
        "name": "Beras",
        "unit": "5 kg",
        "unit_price": 85_000,
        "currency": "IDR",
    }
    r = await client.post("/api/products", headers=other.headers, json=product)
    assert r.status_code == 403
    r = await client.post("/api/products", headers=auth(admin_token), json=product)
    assert r.status_code == 201


async def test_a_user_becomes_a_farmer_once(client, admin_token):
    world = await build_world(client, admin_token)
    r = await client.post(
        "/api/farmers",
        headers=auth(admin_token),
        json={"user_id": world.farmer.id, "name": "Again", "region": "X"},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "already_farmer")


async def test_only_the_charity_admin_creates_its_campaigns(client, admin_token):
    world = await build_world(client, admin_token)
    stranger = await register(client)
    body = {"title": "Books", "unit_name": "Book", "unit_cost": 50_000, "goal_units": 10}
    r = await client.post(
        f"/api/charities/{world.charity['id']}/campaigns", headers=stranger.headers, json=body
    )
    assert r.status_code == 403
    r = await client.get(f"/api/charities/{world.charity['id']}")
    assert [c["unit_name"] for c in r.json()["campaigns"]] == ["Love Package"]


async def test_a_host_lists_products_starts_and_ends_a_session(client, admin_token):
    world = await build_world(client, admin_token)
    sid = world.session["id"]
    assert world.session["status"] == "scheduled"
    r = await client.post(
        f"/api/sessions/{sid}/listings",
        headers=world.host.headers,
        json={
            "product_id": world.product["id"],
            "price": 90_000,
            "stock": 40,
            "pledge_bps": 1000,
            "max_per_buyer": 3,
        },
    )
    assert r.status_code == 201, r.text
    listing = r.json()
    assert (listing["price"], listing["stock"], listing["pledge_bps"]) == (90_000, 40, 1000)

    r = await client.post(f"/api/sessions/{sid}/start", headers=world.host.headers)
    assert r.json()["status"] == "live"
    r = await client.post(f"/api/sessions/{sid}/start", headers=world.host.headers)
    assert r.status_code == 200  # a retried start is harmless
    live = (await client.get("/api/sessions?status=live")).json()["sessions"]
    assert sid in [s["id"] for s in live]

    detail = (await client.get(f"/api/sessions/{sid}")).json()
    assert detail["listings"][0]["product"]["name"] == "Kopi Arabika"
    assert detail["campaign"]["unit_name"] == "Love Package"
    assert detail["charity"]["id"] == world.charity["id"]

    r = await client.post(f"/api/sessions/{sid}/end", headers=world.host.headers)
    assert r.json()["status"] == "ended"
    r = await client.post(f"/api/sessions/{sid}/start", headers=world.host.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "invalid_transition")
    r = await client.post(
        f"/api/sessions/{sid}/listings",
        headers=world.host.headers,
        json={"product_id": world.product["id"], "price": 1, "stock": 1},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "session_ended")
    r = await client.post(
        f"/api/sessions/{sid}/pin",
        headers=world.host.headers,
        json={"listing_id": detail["listings"][0]["id"]},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "session_ended")


async def test_another_host_cannot_touch_my_session(client, admin_token):
    world = await build_world(client, admin_token)
    other = await user_with_roles(client, admin_token, "host")
    sid = world.session["id"]
    r = await client.post(f"/api/sessions/{sid}/start", headers=other.headers)
    assert r.status_code == 403
    r = await client.post(
        f"/api/sessions/{sid}/listings",
        headers=other.headers,
        json={"product_id": world.product["id"], "price": 1, "stock": 1},
    )
    assert r.status_code == 403
    viewer = await register(client)
    r = await client.post(
        "/api/sessions",
        headers=viewer.headers,
        json={"title": "Mine", "charity_id": world.charity["id"], "currency": "IDR"},
    )
    assert r.status_code == 403


async def test_a_product_is_listed_once_per_session_in_the_session_currency(client, admin_token):
    world = await build_world(client, admin_token)
    sid = world.session["id"]
    body = {"product_id": world.product["id"], "price": 90_000, "stock": 5}
    assert (
        await client.post(f"/api/sessions/{sid}/listings", headers=world.host.headers, json=body)
    ).status_code == 201
    r = await client.post(f"/api/sessions/{sid}/listings", headers=world.host.headers, json=body)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "already_listed")
    r = await client.post(
        "/api/sessions",
        headers=world.host.headers,
        json={"title": "Yuan", "charity_id": world.charity["id"], "currency": "CNY"},
    )
    cny = r.json()["id"]
    r = await client.post(f"/api/sessions/{cny}/listings", headers=world.host.headers, json=body)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "currency_mismatch")


async def test_a_campaign_must_belong_to_the_sessions_charity(client, admin_token):
    a = await build_world(client, admin_token)
    b = await build_world(client, admin_token)
    r = await client.post(
        "/api/sessions",
        headers=a.host.headers,
        json={
            "title": "Mixed",
            "charity_id": a.charity["id"],
            "campaign_id": b.campaign["id"],
            "currency": "IDR",
        },
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "campaign_mismatch")


async def test_a_farmer_finds_their_own_profile_and_others_get_404(client, admin_token):
    world = await build_world(client, admin_token)
    r = await client.get("/api/me/farmer", headers=world.farmer.headers)
    assert (r.status_code, r.json()["id"]) == (200, world.farmer_id)
    viewer = await register(client)
    r = await client.get("/api/me/farmer", headers=viewer.headers)
    assert r.status_code == 404
    assert (await client.get("/api/me/farmer")).status_code == 401
