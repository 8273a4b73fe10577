"""Small helpers that drive the public API the way a client does."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

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


async def register(client: httpx.AsyncClient, prefix: str = "viewer") -> Actor:
    h = handle(prefix)
    r = await client.post(
        "/api/auth/register", json={"handle": h, "password": PASSWORD, "display_name": h.title()}
    )
    assert r.status_code == 201, r.text
    return Actor(r.json()["user"], r.json()["token"])


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
