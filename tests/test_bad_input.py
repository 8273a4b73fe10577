"""Bad input gets a clear 4xx with a stable code and the offending field, and changes nothing."""

from typing import Any

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


async def test_a_query_parameter_the_route_does_not_read_is_refused_not_ignored(client):
    r = await client.get("/api/products?limt=5")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unknown_parameter"
    assert r.json()["error"]["details"]["field"] == "limt"
    assert (await client.get("/api/products?limit=5")).status_code == 200


async def test_a_body_nested_a_thousand_deep_is_a_400_not_a_500(client):
    viewer = await register(client)
    deep = "[" * 1000 + '"x"' + "]" * 1000
    for body in (f'{{"amount": 5, "x": {deep}}}', f'{{"amount": {deep}}}', "[" * 5000):
        r = await client.post(
            "/api/donations",
            headers={
                **viewer.headers,
                "Idempotency-Key": "deep",
                "Content-Type": "application/json",
            },
            content=body.encode(),
        )
        assert r.status_code == 400, r.text


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


def _longest(prop: dict[str, Any]) -> int | None:
    """The most characters a JSON-schema property lets through (None: no bound)."""
    if "enum" in prop:
        return max(len(str(v)) for v in prop["enum"])
    if "const" in prop:
        return len(str(prop["const"]))
    if "anyOf" in prop:
        bounds = [_longest(p) for p in prop["anyOf"] if p.get("type") != "null"]
        return None if None in bounds or not bounds else max(b for b in bounds if b is not None)
    if prop.get("type") != "string":
        return 0
    return prop.get("maxLength")


# Fields whose column has another name than the field (the match above goes by names).
STORED_AS = {("Outcome", "reason"): ("payouts", "failure_reason")}


def test_every_body_field_fits_the_column_it_is_written_to():
    """A text field's limit is at most its column's: a longer value would pass validation
    and fail in PostgreSQL (a 500). Each body is matched to the table sharing most of its
    fields' names."""
    from sqlalchemy import String

    from core.http import Body
    from panen.app import create_app
    from panen.models import metadata

    create_app()  # every endpoint module, with its bodies, is imported
    tables = metadata().tables.values()

    def bodies(cls: type) -> list[type]:
        return [c for sub in cls.__subclasses__() for c in (sub, *bodies(sub))]

    too_long = []
    for body in bodies(Body):
        props = body.model_json_schema()["properties"]
        table = max(tables, key=lambda t: len(set(props) & set(t.columns.keys())))
        for name, prop in props.items():
            if (body.__name__, name) in STORED_AS:  # written under another name
                table_name, name = STORED_AS[(body.__name__, name)]
                table = next(t for t in tables if t.name == table_name)
            column = table.columns.get(name)
            if column is None or not isinstance(column.type, String) or not column.type.length:
                continue
            longest = _longest(prop)
            if longest is None or longest > column.type.length:
                too_long.append(f"{body.__name__}.{name} ({longest}) -> {table.name}.{name}")
    assert too_long == []


async def test_a_nul_anywhere_in_a_request_is_400_never_500(client, admin_token):
    """PostgreSQL cannot store NUL: every path, query and body string holding a control
    character is refused, on every route, before anything reads it."""
    from starlette.routing import Route

    from panen.app import create_app

    routes = [r for r in create_app().routes if isinstance(r, Route) and r.path.startswith("/api")]
    answers = []
    for route in routes:
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            path = route.path
            for name in route.param_convertors:
                path = path.replace("{" + name + "}", "bad%00id")
            r = await client.request(
                method,
                path + "?limit=1&q=a%00b",
                headers=auth(admin_token),
                json={"name": "a\u0000b"} if method == "POST" else None,
            )
            answers.append((method, route.path, r.status_code))
    assert [a for a in answers if a[2] >= 500] == []
    assert all(code == 400 for _, _, code in answers), [a for a in answers if a[2] != 400]


@pytest.mark.parametrize("control", ["\u0000", "\u001b", "\u007f", "\u0085", "\u009b"])
async def test_a_control_character_in_a_body_field_is_400_naming_the_field(
    client, admin_token, control
):
    r = await client.post(
        "/api/auth/register",
        json={"handle": "nul_user", "password": "long enough pw", "display_name": f"Si{control}ti"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_field"
    assert r.json()["error"]["details"]["field"] == "display_name"


@pytest.mark.parametrize(
    "path", ["/api/products?before=", "/api/sessions?limit=", "/api/sessions?status="]
)
async def test_a_query_parameter_given_empty_is_400_not_taken_as_absent(client, path):
    r = await client.get(path)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_field"
