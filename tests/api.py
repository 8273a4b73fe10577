"""Helpers that set a test's scene the way a client would: users, worlds, orders, gifts,
payments, points (through the public API where there is one, else straight to the tables)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from starlette.applications import Starlette

from commerce.payments.providers import SIGNATURE_HEADER, SandboxProvider, sign
from core.auth import Tokens
from core.clock import utcnow
from core.db import Database
from core.ids import new_id
from core.services import Services
from core.settings import Settings
from donations.energy import points
from donations.energy.rules import Rules

PASSWORD = "correct horse battery"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Actor:
    user: dict[str, Any]
    token: str

    @property
    def id(self) -> str:
        return str(self.user["id"])

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.token)


def handle(prefix: str = "u") -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


ADDRESS = {
    "recipient": "Siti Rahayu",
    "phone": "0812-3456-7890",
    "street": "Jl. Cihampelas No. 12, RT 02/RW 05",
    "district": "Coblong",
    "city": "Kota Bandung",
    "province": "Jawa Barat",
    "postal_code": "40131",
}


async def register(
    client: httpx.AsyncClient, prefix: str = "viewer", address: bool = True
) -> Actor:
    """A new viewer; with a default shipping address unless `address` is False."""
    h = handle(prefix)
    r = await client.post(
        "/api/auth/register", json={"handle": h, "password": PASSWORD, "display_name": h.title()}
    )
    assert r.status_code == 201, r.text
    actor = Actor(r.json()["user"], r.json()["token"])
    if address:
        await add_address(client, actor)
    return actor


async def add_address(client: httpx.AsyncClient, actor: Actor, **fields: Any) -> dict[str, Any]:
    r = await client.post("/api/me/addresses", headers=actor.headers, json={**ADDRESS, **fields})
    assert r.status_code == 201, r.text
    address: dict[str, Any] = r.json()["address"]
    return address


async def login(client: httpx.AsyncClient, handle_: str) -> Actor:
    r = await client.post("/api/auth/login", json={"handle": handle_, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return Actor(r.json()["user"], r.json()["token"])


async def user_with_roles(client: httpx.AsyncClient, admin_token: str, *roles: str) -> Actor:
    h = handle(roles[0] if roles else "u")
    r = await client.post(
        "/api/admin/users",
        headers=auth(admin_token),
        json={"handle": h, "password": PASSWORD, "display_name": h, "roles": list(roles)},
    )
    assert r.status_code == 201, r.text
    return await login(client, h)


async def relogin(client: httpx.AsyncClient, actor: Actor) -> Actor:
    """A fresh token, carrying roles granted since the last login."""
    return await login(client, str(actor.user["handle"]))


@dataclass
class World:
    """A farmer with a product, a charity with a campaign, and a host with a session."""

    farmer: Actor
    farmer_id: str
    product: dict[str, Any]
    charity_admin: Actor
    charity: dict[str, Any]
    campaign: dict[str, Any]
    host: Actor
    session: dict[str, Any]


async def build_world(client: httpx.AsyncClient, admin_token: str) -> World:
    admin = auth(admin_token)
    farmer = await register(client, "farmer")
    r = await client.post(
        "/api/farmers",
        headers=admin,
        json={"user_id": farmer.id, "name": "Kebun Sari", "region": "Garut"},
    )
    assert r.status_code == 201, r.text
    farmer_id = r.json()["id"]
    farmer = await relogin(client, farmer)
    r = await client.post(
        "/api/products",
        headers=farmer.headers,
        json={
            "farmer_id": farmer_id,
            "name": "Kopi Arabika",
            "unit": "250 g",
            "unit_price": 95_000,
            "currency": "IDR",
        },
    )
    assert r.status_code == 201, r.text
    product = r.json()
    charity_admin = await register(client, "charity")
    r = await client.post(
        "/api/charities",
        headers=admin,
        json={"name": "Pelita", "description": "School kits", "admin_user_id": charity_admin.id},
    )
    assert r.status_code == 201, r.text
    charity = r.json()
    charity_admin = await relogin(client, charity_admin)
    r = await client.post(
        f"/api/charities/{charity['id']}/campaigns",
        headers=charity_admin.headers,
        json={
            "title": "Love Package",
            "unit_name": "Love Package",
            "unit_cost": 150_000,
            "goal_units": 500,
        },
    )
    assert r.status_code == 201, r.text
    campaign = r.json()
    host = await user_with_roles(client, admin_token, "host")
    r = await client.post(
        "/api/sessions",
        headers=host.headers,
        json={
            "title": "Panen Raya",
            "charity_id": charity["id"],
            "campaign_id": campaign["id"],
            "currency": "IDR",
        },
    )
    assert r.status_code == 201, r.text
    return World(farmer, farmer_id, product, charity_admin, charity, campaign, host, r.json())


async def live_listing(
    client: httpx.AsyncClient, admin_token: str, stock: int = 10, start: bool = True, **extra: Any
) -> tuple[World, dict[str, Any]]:
    world = await build_world(client, admin_token)
    body = {"product_id": world.product["id"], "price": 95_000, "stock": stock, **extra}
    r = await client.post(
        f"/api/sessions/{world.session['id']}/listings", headers=world.host.headers, json=body
    )
    assert r.status_code == 201, r.text
    if start:
        r = await client.post(
            f"/api/sessions/{world.session['id']}/start", headers=world.host.headers
        )
        assert r.status_code == 200, r.text
    return world, r.json() if not start else (await _listing(client, world))


async def _listing(client: httpx.AsyncClient, world: World) -> dict[str, Any]:
    r = await client.get(f"/api/sessions/{world.session['id']}")
    listing: dict[str, Any] = r.json()["listings"][0]
    return listing


async def order(
    client: httpx.AsyncClient, buyer: Actor, listing_id: str, quantity: int = 1, key: str = ""
) -> httpx.Response:
    return await client.post(
        "/api/orders",
        headers={**buyer.headers, "Idempotency-Key": key or secrets.token_hex(8)},
        json={"listing_id": listing_id, "quantity": quantity},
    )


async def pay(client: httpx.AsyncClient, buyer: Actor, placed: dict[str, Any]) -> httpx.Response:
    return await client.post(
        f"/api/payments/{placed['payment']['id']}/sandbox/approve", headers=buyer.headers
    )


async def donate(
    client: httpx.AsyncClient, donor: Actor, world: World, amount: int, key: str = "", **extra: Any
) -> httpx.Response:
    body = {"charity_id": world.charity["id"], "session_id": world.session["id"], "amount": amount}
    return await client.post(
        "/api/donations",
        headers={**donor.headers, "Idempotency-Key": key or secrets.token_hex(8)},
        json={**body, **extra},
    )


async def donate_and_pay(
    client: httpx.AsyncClient, donor: Actor, world: World, amount: int, **extra: Any
) -> dict[str, Any]:
    r = await donate(client, donor, world, amount, **extra)
    assert r.status_code == 201, r.text
    placed = r.json()
    r = await client.post(
        f"/api/payments/{placed['payment']['id']}/sandbox/approve", headers=donor.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["donation"]["status"] == "paid"
    return placed["donation"]  # type: ignore[no-any-return]


async def live_world(client: httpx.AsyncClient, admin_token: str, **listing: Any) -> World:
    world, _ = await live_listing(client, admin_token, **listing)
    return world


async def make_buyers(db: Database, settings: Settings, n: int) -> list[dict[str, str]]:
    """n viewers with tokens, written straight to the table (hashing n passwords would
    dominate the test's time, and login is not what this test is about)."""
    tokens = Tokens(settings.secret_key, 3600)
    ids = [new_id("usr") for _ in range(n)]
    async with db.transaction() as s:
        await s.execute(
            text(
                "INSERT INTO users (id, handle, display_name, password_hash, roles)"
                " VALUES (:id, :h, :h, 'x', ARRAY['viewer'])"
            ),
            [{"id": i, "h": f"b{secrets.token_hex(6)}"} for i in ids],
        )
        await s.execute(
            text(
                "INSERT INTO addresses (id, user_id, recipient, phone, street, district, city,"
                " province, postal_code, zone, is_default)"
                " VALUES (:a, :id, 'Budi', '+6281234567890', 'Jl. Merdeka 1', 'Coblong',"
                " 'Kota Bandung', 'Jawa Barat', '40131', 'jawa', true)"
            ),
            [{"a": new_id("adr"), "id": i} for i in ids],
        )
    return [{"Authorization": f"Bearer {tokens.issue(i, ['viewer'])}"} for i in ids]


async def my_points(client: httpx.AsyncClient, user: Actor) -> dict[str, Any]:
    r = await client.get("/api/me/points", headers=user.headers)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def make_pool(
    client: httpx.AsyncClient, admin_token: str, world: World, **body: Any
) -> dict[str, Any]:
    sponsor = await user_with_roles(client, admin_token, "sponsor")
    r = await client.post(
        "/api/pools",
        headers=sponsor.headers,
        json={"sponsor_name": "Bank Tani", **body},
    )
    assert r.status_code == 201, r.text
    pool: dict[str, Any] = r.json()
    return pool


async def redeem(
    client: httpx.AsyncClient, user: Actor, pool_id: str, pts: int, key: str = "", **extra: Any
) -> httpx.Response:
    return await client.post(
        "/api/points/redeem",
        headers={**user.headers, "Idempotency-Key": key or secrets.token_hex(8)},
        json={"pool_id": pool_id, "points": pts, **extra},
    )


def services_of(app: Starlette) -> Services:
    services: Services = app.state.services
    return services


async def grant(app: Starlette, user: Actor, n: int, ago_s: int = 0, ttl_s: int = 3600) -> None:
    """Points issued `ago_s` seconds ago (as a donation would), with their own lot."""
    now = utcnow() - timedelta(seconds=ago_s)
    async with services_of(app).db.transaction() as s:
        award = points.Award(user.id, "donation", f"test:{secrets.token_hex(6)}", n)
        assert await points.award(s, [award], Rules(points_ttl_s=ttl_s), now)


def provider_event(
    settings: Settings,
    payment_id: str,
    amount: int,
    kind: str = "payment.succeeded",
    event_id: str = "",
) -> tuple[bytes, dict[str, str]]:
    """A webhook body and headers as the sandbox gateway signs them (what a real gateway
    would send, at any moment, whatever our side did meanwhile)."""
    body = orjson.dumps(
        {
            "id": event_id or f"evt_{secrets.token_hex(8)}",
            "type": kind,
            "created": int(time.time()),
            "data": {"payment_id": payment_id, "amount": amount, "currency": "IDR"},
        }
    )
    secret = SandboxProvider(settings.secret_key).secret
    return body, {SIGNATURE_HEADER: sign(secret, int(time.time()), body)}
