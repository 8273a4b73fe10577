"""Sponsors pay money in through the same providers as orders and gifts: a top-up is a
pending payment, paid (or failed) by the provider's event, credited once to the account
their matches draw on; their funds say what they paid in, what their matches and pools
gave, and what is left or owed."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from core.db import Database
from tests.api import Actor, donate_and_pay, live_listing, register, user_with_roles
from tests.checks import assert_ledger_invariants


async def top_up(
    client: httpx.AsyncClient, sponsor: Actor, amount: int, key: str = "", **extra: Any
) -> httpx.Response:
    return await client.post(
        "/api/sponsors/top-ups",
        headers={**sponsor.headers, "Idempotency-Key": key or secrets.token_hex(8)},
        json={"amount": amount, **extra},
    )


async def decide(client: httpx.AsyncClient, sponsor: Actor, payment_id: str, ok: bool) -> Any:
    verb = "approve" if ok else "decline"
    r = await client.post(f"/api/payments/{payment_id}/sandbox/{verb}", headers=sponsor.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def funds(client: httpx.AsyncClient, sponsor: Actor) -> Any:
    r = await client.get(f"/api/sponsors/{sponsor.id}/funds", headers=sponsor.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_paid_top_up_is_credited_once_and_matches_draw_it_down(
    client, admin_token, db: Database
) -> None:
    world, _ = await live_listing(client, admin_token)
    sponsor = await user_with_roles(client, admin_token, "sponsor")
    r = await top_up(client, sponsor, 500_000, key="fund-1")
    assert r.status_code == 201, r.text
    placed = r.json()
    assert placed["top_up"]["status"] == "pending"
    assert placed["payment"]["status"] == "pending" and placed["payment"]["provider"] == "sandbox"
    assert (await funds(client, sponsor))["currencies"] == []  # nothing until it is paid

    answer = await decide(client, sponsor, placed["payment"]["id"], True)
    assert answer["top_up"]["status"] == "paid" and answer["payment"]["status"] == "succeeded"
    # The same key again is the same top-up, as it is now; another body is refused.
    again = await top_up(client, sponsor, 500_000, key="fund-1")
    assert again.status_code == 200 and again.json()["top_up"]["status"] == "paid"
    assert again.json()["top_up"]["id"] == placed["top_up"]["id"]
    other = await top_up(client, sponsor, 400_000, key="fund-1")
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_key_reused")

    r = await client.post(
        f"/api/sessions/{world.session['id']}/matches",
        headers=sponsor.headers,
        json={"sponsor_name": "Bank Tani", "ratio_bps": 5_000, "cap": 1_000_000},
    )
    assert r.status_code == 201, r.text
    donor = await register(client)
    await donate_and_pay(client, donor, world, 200_000)  # matched 100,000
    found = await funds(client, sponsor)
    assert found["currencies"] == [
        {
            "currency": "IDR",
            "topped_up": 500_000,
            "matched": 100_000,
            "redeemed": 0,
            "balance": 400_000,
        }
    ]
    assert [t["id"] for t in found["top_ups"]] == [placed["top_up"]["id"]]
    await assert_ledger_invariants(db)


async def test_a_declined_top_up_credits_nothing_and_a_sponsor_can_owe(
    client, admin_token, db: Database
) -> None:
    world, _ = await live_listing(client, admin_token)
    sponsor = await user_with_roles(client, admin_token, "sponsor")
    placed = (await top_up(client, sponsor, 50_000)).json()
    answer = await decide(client, sponsor, placed["payment"]["id"], False)
    assert answer["top_up"]["status"] == "failed" and answer["payment"]["status"] == "failed"
    r = await client.post(
        f"/api/payments/{placed['payment']['id']}/sandbox/approve", headers=sponsor.headers
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "payment_not_pending")
    r = await client.post(
        f"/api/sessions/{world.session['id']}/matches",
        headers=sponsor.headers,
        json={"sponsor_name": "Bank Tani", "ratio_bps": 10_000, "cap": 30_000},
    )
    assert r.status_code == 201, r.text
    await donate_and_pay(client, await register(client), world, 30_000)
    assert (await funds(client, sponsor))["currencies"] == [
        {"currency": "IDR", "topped_up": 0, "matched": 30_000, "redeemed": 0, "balance": -30_000}
    ]
    await assert_ledger_invariants(db)


async def test_only_sponsors_top_up_and_only_they_read_their_funds(client, admin_token) -> None:
    viewer = await register(client)
    r = await top_up(client, viewer, 10_000)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    sponsor = await user_with_roles(client, admin_token, "sponsor")
    r = await client.get(f"/api/sponsors/{sponsor.id}/funds", headers=viewer.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    r = await client.get(
        f"/api/sponsors/{sponsor.id}/funds", headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert r.status_code == 200
    r = await client.get(
        "/api/sponsors/usr_nobody/funds", headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    for amount, extra, field in (
        (0, {}, "amount"),
        (10**14, {}, "amount"),
        (5, {"currency": "EUR"}, "currency"),
        (5, {"note": "x"}, "note"),
    ):
        r = await top_up(client, sponsor, amount, **extra)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["details"]["field"] == field
    r = await top_up(client, sponsor, 10_000, key="x y")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_field")
