"""Energy points through the in-process app on real PostgreSQL: earning by buying, giving,
watching and liking under caps; redeeming into sponsor pools at the pool's rate and never
beyond its cap; refunds taking points back; expiry. Both books balance after each."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from core.clock import utcnow
from donations.energy import earning as energy
from donations.energy.rules import Rules, parse
from donations.energy.tasks import expire_all
from donations.transparency.verify import verify_receipt
from tests.api import (
    donate_and_pay,
    grant,
    live_world,
    make_pool,
    my_points,
    redeem,
    register,
    services_of,
    user_with_roles,
)
from tests.checks import assert_books_balance, session_events


def test_rules_come_from_one_json_setting_and_bad_rules_stop_the_start():
    rules = parse('{"watch_minute_s": 2, "spend_minor_per_point": {"IDR": 500}}')
    assert rules.watch_minute_s == 2 and rules.spend_rate("IDR") == 500
    assert parse("").watch_max_minutes_per_session == Rules().watch_max_minutes_per_session
    for bad in ('{"nope": 1}', '{"watch_minute_s": "x"}', "[1]", "{", '{"likes_per_point": 0}'):
        try:
            parse(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")


async def test_a_paid_donation_earns_points_per_unit_of_currency(client, admin_token, db):
    world = await live_world(client, admin_token)
    donor = await register(client, "giver")
    await donate_and_pay(client, donor, world, 25_500)
    got = await my_points(client, donor)
    assert got["balance"] == 25 and got["redeemable"] == 25
    assert [lot["source"] for lot in got["lots"]] == ["donation"]
    assert got["history"][0]["kind"] == "donation" and got["history"][0]["points"] == 25
    await assert_books_balance(db)


async def test_redeeming_moves_exactly_the_rate_to_the_charity_and_never_beyond_the_cap(
    app, client, admin_token, db
):
    world = await live_world(client, admin_token)
    # 100 points = one Love Package (Rp 150,000); the sponsor puts in two and a half.
    pool = await make_pool(
        client,
        admin_token,
        world,
        campaign_id=world.campaign["id"],
        rate_points=100,
        cap=375_000,
    )
    assert pool["rate"] == {"points": 100, "amount": 150_000} and pool["remaining"] == 375_000
    user = await register(client, "redeemer")
    await grant(app, user, 400)
    key = secrets.token_hex(8)
    r = await redeem(client, user, pool["id"], 150, key, session_id=world.session["id"])
    assert r.status_code == 201, r.text
    first = r.json()["redemption"]
    assert first["amount"] == 225_000 and first["points"] == 150
    again = await redeem(client, user, pool["id"], 150, key, session_id=world.session["id"])
    assert again.status_code == 200 and again.json()["redemption"]["id"] == first["id"]
    assert again.json()["balance"] == r.json()["balance"] == 250  # shaped like the first
    other = await redeem(client, user, pool["id"], 100, key)
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    # 150,000 left: 101 points would be 151,500.
    r = await redeem(client, user, pool["id"], 101)
    assert r.status_code == 409 and r.json()["error"]["code"] == "pool_exhausted"
    assert r.json()["error"]["details"] == {"remaining": 150_000, "max_points": 100}
    r = await redeem(client, user, pool["id"], 100, session_id=world.session["id"])
    assert r.status_code == 201, r.text
    r = await redeem(client, user, pool["id"], 1)
    assert r.status_code == 409 and r.json()["error"]["code"] == "pool_exhausted"
    got = await my_points(client, user)
    assert got["balance"] == 150
    async with db.reader() as s:
        paid = await s.scalar(
            text(
                "SELECT sum(p.amount) FROM ledger_postings p JOIN ledger_transactions t"
                " ON t.id = p.transaction_id WHERE t.kind = 'energy' AND p.account_code = :a"
            ),
            {"a": f"charity_payable:{world.charity['id']}"},
        )
        pooled = await s.scalar(
            text("SELECT sum(amount) FROM points_postings WHERE account = :a"),
            {"a": f"pool:{pool['id']}"},
        )
    assert paid == 375_000 and pooled == 250
    r = await client.get("/api/pools", params={"session_id": world.session["id"]})
    assert [p["remaining"] for p in r.json()["pools"]] == [0]
    r = await client.get(f"/api/points/redemptions/{first['id']}/receipt", headers=user.headers)
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["entry"]["amount"] == 225_000 if isinstance(receipt["entry"], dict) else True
    verify_receipt(receipt)
    events = await session_events(db, world.session["id"], "energy")
    assert [(e["points"], e["amount"], e["unit_name"]) for e in events] == [
        (150, 225_000, "Love Package"),
        (100, 150_000, "Love Package"),
    ]
    await assert_books_balance(db)


async def test_redeeming_spends_the_soonest_expiring_points_first(app, client, admin_token, db):
    world = await live_world(client, admin_token)
    pool = await make_pool(
        client,
        admin_token,
        world,
        charity_id=world.charity["id"],
        rate_points=1,
        rate_amount=10,
        cap=10_000,
    )
    user = await register(client, "thrifty")
    await grant(app, user, 30, ttl_s=7200)
    await grant(app, user, 20, ttl_s=600)
    assert (await redeem(client, user, pool["id"], 25)).status_code == 201
    lots = (await my_points(client, user))["lots"]
    assert [(lot["points"], lot["remaining"]) for lot in lots] == [(30, 25)]


async def test_expired_points_cannot_be_redeemed_and_the_sweep_expires_them(
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
        cap=10_000,
    )
    user = await register(client, "late")
    await grant(app, user, 40, ago_s=120, ttl_s=60)  # expired a minute ago
    await grant(app, user, 5)
    got = await my_points(client, user)
    assert got["balance"] == 45 and got["redeemable"] == 5
    r = await redeem(client, user, pool["id"], 6)
    assert r.status_code == 409 and r.json()["error"]["code"] == "insufficient_points"
    assert await expire_all(services_of(app)) >= 40
    assert await expire_all(services_of(app)) == 0  # the sweep is idempotent
    got = await my_points(client, user)
    assert got["balance"] == 5 and [lot["points"] for lot in got["lots"]] == [5]
    # Time moves on (an injected clock, not a sleep): the rest expires too.
    assert await expire_all(services_of(app), utcnow() + timedelta(days=1)) >= 5
    assert (await my_points(client, user))["balance"] == 0
    await assert_books_balance(db)


async def test_bad_redeem_and_pool_input_is_4xx_with_the_field(client, admin_token):
    world = await live_world(client, admin_token)
    user = await register(client, "typo")
    r = await client.post(
        "/api/points/redeem", headers=user.headers, json={"pool_id": "x", "points": 1}
    )
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "Idempotency-Key"
    r = await redeem(client, user, "pol_missing", 0)
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "points"
    r = await redeem(client, user, "pol_missing", 5)
    assert r.status_code == 404
    r = await client.post(
        "/api/pools",
        headers=user.headers,
        json={"sponsor_name": "x", "charity_id": world.charity["id"], "rate_points": 1, "cap": 5},
    )
    assert r.status_code == 403
    sponsor = await user_with_roles(client, admin_token, "sponsor")
    r = await client.post(
        "/api/pools",
        headers=sponsor.headers,
        json={"sponsor_name": "x", "charity_id": world.charity["id"], "rate_points": 1, "cap": 5},
    )
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "rate_amount"


def _batch(
    slot: int, watch: list[list[Any]], likes: list[list[Any]] | None = None
) -> dict[str, Any]:
    return {
        "id": f"proc-test:{slot}:{secrets.token_hex(3)}",
        "slot": slot,
        "watch": watch,
        "likes": likes or [],
    }


async def test_watch_minutes_pay_once_per_minute_up_to_the_session_and_day_caps(
    app, client, admin_token, db, monkeypatch
):
    world = await live_world(client, admin_token)
    sid = world.session["id"]
    user = await register(client, "watcher")
    services = services_of(app)
    rules = Rules(watch_max_minutes_per_session=3, watch_max_minutes_per_day=4)
    monkeypatch.setattr(energy, "rules_of", lambda _settings: rules)
    slot = 10_000_000 + secrets.randbelow(10**6)
    # One minute claimed by two processes (and a replayed job) still pays once.
    first = _batch(slot, [[user.id, sid, "dev-a"]])
    assert await energy.award_activity(services, first) == 1
    assert await energy.award_activity(services, first) == 0
    assert await energy.award_activity(services, _batch(slot, [[user.id, sid, "dev-b"]])) == 0
    for m in range(1, 6):
        await energy.award_activity(services, _batch(slot + m, [[user.id, sid, "dev-a"]]))
    assert (await my_points(client, user))["balance"] == 3  # the session's cap
    # Another room the same day: only the day's last minute is left.
    other = await live_world(client, admin_token)
    for m in range(6, 9):
        await energy.award_activity(
            services, _batch(slot + m, [[user.id, other.session["id"], "dev-a"]])
        )
    assert (await my_points(client, user))["balance"] == 4
    await assert_books_balance(db)


async def test_many_accounts_on_one_device_earn_for_at_most_the_device_limit(
    app, client, admin_token, db, monkeypatch
):
    world = await live_world(client, admin_token)
    sid = world.session["id"]
    users = [await register(client, f"sock{i}") for i in range(5)]
    rules = Rules(device_accounts_per_minute=2)
    monkeypatch.setattr(energy, "rules_of", lambda _settings: rules)
    slot = 20_000_000 + secrets.randbelow(10**6)
    device = f"dev-{secrets.token_hex(4)}"
    paid = await energy.award_activity(
        services_of(app), _batch(slot, [[u.id, sid, device] for u in users])
    )
    assert paid == 2
    assert sorted([(await my_points(client, u))["balance"] for u in users]) == [0, 0, 0, 1, 1]


async def test_a_like_flood_pays_no_more_than_the_like_caps(
    app, client, admin_token, db, monkeypatch
):
    world = await live_world(client, admin_token)
    sid = world.session["id"]
    user = await register(client, "liker")
    rules = Rules(likes_per_point=10, like_max_points_per_session=7, like_max_points_per_day=9)
    monkeypatch.setattr(energy, "rules_of", lambda _settings: rules)
    slot = 30_000_000 + secrets.randbelow(10**6)
    services = services_of(app)
    assert await energy.award_activity(services, _batch(slot, [], [[user.id, sid, 35]])) == 3
    flood = _batch(slot + 1, [], [[user.id, sid, 100_000]])
    assert await energy.award_activity(services, flood) == 4
    assert await energy.award_activity(services, flood) == 0  # a replayed batch
    other = await live_world(client, admin_token)
    more = _batch(slot + 2, [], [[user.id, other.session["id"], 100_000]])
    assert await energy.award_activity(services, more) == 2  # the day's cap
    assert (await my_points(client, user))["balance"] == 9
    await assert_books_balance(db)
