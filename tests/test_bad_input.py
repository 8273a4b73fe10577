"""Bad input gets a clear 4xx with a stable code and the offending field, and changes nothing."""

import pytest
from sqlalchemy import func, select

from commerce.catalog.models import Product
from tests.api import PASSWORD, auth, build_world, register


def product(**overrides):
    body = {"name": "Beras", "unit": "5 kg", "unit_price": 85_000, "currency": "IDR"}
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("override", "field", "code"),
    [
        ({"unit_price": -5}, "unit_price", "invalid_field"),
        ({"unit_price": 0}, "unit_price", "invalid_field"),
        ({"unit_price": 10**20}, "unit_price", "invalid_field"),
        ({"unit_price": 1.5}, "unit_price", "invalid_field"),
        ({"unit_price": "85000"}, "unit_price", "invalid_field"),
        ({"unit_price": True}, "unit_price", "invalid_field"),
        ({"currency": "XYZ"}, "currency", "invalid_field"),
        ({"name": "x" * 500}, "name", "invalid_field"),
        ({"name": "   "}, "name", "invalid_field"),
        ({"image_url": "javascript:alert(1)"}, "image_url", "invalid_field"),
        ({"surprise": 1}, "surprise", "unknown_field"),
        ({"unit": None}, "unit", "invalid_field"),
    ],
)
async def test_a_bad_product_field_is_a_400_naming_the_field_and_nothing_is_stored(
    client, admin_token, db, override, field, code
):
    world = await build_world(client, admin_token)
    async with db.reader() as s:
        before = (await s.execute(select(func.count()).select_from(Product))).scalar_one()
    r = await client.post(
        "/api/products",
        headers=world.farmer.headers,
        json=product(farmer_id=world.farmer_id, **override),
    )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["code"], err["details"]["field"]) == (code, field)
    async with db.reader() as s:
        after = (await s.execute(select(func.count()).select_from(Product))).scalar_one()
    assert after == before


async def test_a_missing_field_is_named(client):
    r = await client.post("/api/auth/register", json={"handle": "abc_def", "password": PASSWORD})
    err = r.json()["error"]
    assert (r.status_code, err["code"], err["details"]["field"]) == (
        400,
        "missing_field",
        "display_name",
    )


@pytest.mark.parametrize("raw", [b"{", b"not json", b"", b"[1,2]", b'"text"', b'{"a":NaN}'])
async def test_malformed_json_is_a_400_not_a_500(client, raw):
    r = await client.post(
        "/api/auth/register", content=raw, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] in ("malformed_json", "invalid_field")


async def test_a_body_over_the_limit_is_a_413(client, settings):
    big = b'{"handle":"' + b"a" * (settings.max_body_bytes + 10) + b'"}'
    r = await client.post(
        "/api/auth/register", content=big, headers={"Content-Type": "application/json"}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (413, "too_large")


@pytest.mark.parametrize(
    "path",
    [
        "/api/farmers/frm_nope",
        "/api/charities/chr_nope",
        "/api/sessions/ses_nope",
    ],
)
async def test_an_unknown_id_is_a_404(client, path):
    r = await client.get(path)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")


async def test_unknown_ids_inside_a_body_are_404s(client, admin_token):
    world = await build_world(client, admin_token)
    r = await client.post(
        "/api/sessions",
        headers=world.host.headers,
        json={"title": "X", "charity_id": "chr_nope", "currency": "IDR"},
    )
    assert r.status_code == 404
    r = await client.post(
        f"/api/sessions/{world.session['id']}/listings",
        headers=world.host.headers,
        json={"product_id": "prd_nope", "price": 1, "stock": 1},
    )
    assert r.status_code == 404
    r = await client.post(
        "/api/farmers",
        headers=auth(admin_token),
        json={"user_id": "usr_nope", "name": "X", "region": "Y"},
    )
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": 100, "stock": -1}, "stock"),
        ({"price": 100, "stock": 1, "pledge_bps": 10_001}, "pledge_bps"),
        ({"price": 100, "stock": 1, "pledge_bps": 100, "pledge_per_unit": 5}, "pledge_per_unit"),
        ({"price": 100, "stock": 1, "pledge_per_unit": 101}, "pledge_per_unit"),
        ({"price": 100, "stock": 1, "max_per_buyer": 0}, "max_per_buyer"),
    ],
)
async def test_listing_rules_are_checked_before_anything_is_written(
    client, admin_token, body, field
):
    world = await build_world(client, admin_token)
    r = await client.post(
        f"/api/sessions/{world.session['id']}/listings",
        headers=world.host.headers,
        json={"product_id": world.product["id"], **body},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"]["field"] == field
    detail = (await client.get(f"/api/sessions/{world.session['id']}")).json()
    assert detail["listings"] == []


async def test_bad_query_parameters_are_400s(client):
    assert (await client.get("/api/sessions?status=bogus")).status_code == 400
    assert (await client.get("/api/products?limit=abc")).status_code == 400
    assert (await client.get("/api/products?limit=100000")).status_code == 400


async def test_unknown_routes_and_methods_answer_in_the_error_format(client):
    r = await client.get("/api/nothing-here")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    r = await client.delete("/api/me")
    assert (r.status_code, r.json()["error"]["code"]) == (405, "method_not_allowed")


async def test_a_viewer_cannot_use_admin_or_host_endpoints(client):
    viewer = await register(client)
    for path, body in [
        ("/api/farmers", {"user_id": viewer.id, "name": "X", "region": "Y"}),
        ("/api/charities", {"name": "X", "description": "Y", "admin_user_id": viewer.id}),
        ("/api/sessions", {"title": "X", "charity_id": "chr_x", "currency": "IDR"}),
    ]:
        r = await client.post(path, json=body, headers=viewer.headers)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden"), path
