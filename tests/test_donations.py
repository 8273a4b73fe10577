"""Donations, sponsor matches, pledges, milestones, disbursements, receipts and reports,
through the HTTP API of the in-process app, on real PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from typing import Any

import pytest
from sqlalchemy import text

from core.errors import ApiError
from donations.gifts import service as gifts
from donations.gifts.schemas import gift_frame
from donations.transparency import checkpoint, log, merkle, signing
from donations.transparency.verify import VerificationError, verify_receipt
from panen.flows.settle import settle_all
from tests.api import (
    Actor,
    World,
    build_world,
    donate,
    donate_and_pay,
    live_listing,
    live_world,
    order,
    pay,
    register,
    user_with_roles,
)
from tests.checks import assert_charity_books, assert_ledger_invariants, session_events


def _key(settings: Any) -> signing.SigningKey:
    return signing.load_or_create(settings.signing_key_file)


async def test_a_paid_donation_reaches_the_charity_the_log_and_the_room(
    client, admin_token, db, settings
):
    world = await live_world(client, admin_token)
    donor = await register(client, "giver")
    r = await donate(client, donor, world, 50_000, message="Semangat!", visibility="first_name")
    assert r.status_code == 201, r.text
    placed = r.json()
    assert placed["donation"]["status"] == "pending"
    assert placed["payment"]["status"] == "pending" and placed["payment"]["provider"] == "sandbox"
    r = await client.get(
        f"/api/donations/{placed['donation']['id']}/receipt", headers=donor.headers
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_settled"

    paid = await donate_and_pay(client, donor, world, 70_000, message="Untuk adik-adik")
    r = await client.get(f"/api/donations/{paid['id']}/receipt", headers=donor.headers)
    assert r.status_code == 200, r.text
    receipt = r.json()
    # The room's event names the gift's entry: filled in when the entry was sequenced.
    [event] = [
        e
        for e in await session_events(db, world.session["id"], "donation")
        if e["donation_id"] == paid["id"]
    ]
    assert event["amount"] == 70_000 and event["message"] == "Untuk adik-adik"
    assert event["display_name"] == donor.user["display_name"]
    assert event["entry_index"] == receipt["entry_index"]
    assert donor.id not in receipt["entry"]  # only the salted commitment is public
    verdict = verify_receipt(receipt, _key(settings).verifier)
    assert any("commitment" in c for c in verdict.checks)
    other = await register(client)
    r = await client.get(f"/api/donations/{paid['id']}/receipt", headers=other.headers)
    assert r.status_code == 404

    report = (await client.get(f"/api/charities/{world.charity['id']}/report")).json()
    assert report["currencies"]["IDR"]["donations"] == 70_000
    # the charity itself, alone and in the list, carries the same public totals
    one = (await client.get(f"/api/charities/{world.charity['id']}")).json()
    assert one["totals"] == report["currencies"]
    listed = (await client.get("/api/charities", params={"limit": 200})).json()["charities"]
    assert listed and all(isinstance(c["totals"], dict) for c in listed)
    for c in listed:
        if c["id"] == world.charity["id"]:
            assert c["totals"] == one["totals"]
    await assert_ledger_invariants(db)
    await assert_charity_books(db, world.charity["id"])


async def test_a_forged_receipt_fails_verification(client, admin_token, settings):
    world = await live_world(client, admin_token)
    donor = await register(client)
    paid = await donate_and_pay(client, donor, world, 10_000)
    receipt = (
        await client.get(f"/api/donations/{paid['id']}/receipt", headers=donor.headers)
    ).json()
    key = _key(settings).verifier
    bigger = {**receipt, "donation": {**receipt["donation"], "amount": 99_000}}
    with pytest.raises(VerificationError, match="amount"):
        verify_receipt(bigger, key)
    someone = {**receipt, "donor": {**receipt["donor"], "id": "usr_someone_else"}}
    with pytest.raises(VerificationError, match="commitment"):
        verify_receipt(someone, key)
    edited = {**receipt, "entry": receipt["entry"].replace("10000", "10001")}
    with pytest.raises(VerificationError, match="leaf"):
        verify_receipt(edited, key)


async def test_the_same_key_gives_the_same_donation_and_another_body_is_409(client, admin_token):
    world = await live_world(client, admin_token)
    donor = await register(client)
    first = await donate(client, donor, world, 25_000, key="gift-1")
    again = await donate(client, donor, world, 25_000, key="gift-1")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["donation"]["id"] == first.json()["donation"]["id"]
    other = await donate(client, donor, world, 26_000, key="gift-1")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    stranger = await register(client)
    assert (await donate(client, stranger, world, 25_000, key="gift-1")).status_code == 201


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"amount": 0}, 400, "amount"),
        ({"amount": "1000"}, 400, "amount"),
        ({"amount": 10.5}, 400, "amount"),
        ({"visibility": "secret"}, 400, "visibility"),
        ({"message": "x" * 281}, 400, "message"),
        ({"colour": "red"}, 400, "colour"),
        ({"currency": "CNY"}, 400, "currency"),
    ],
)
async def test_bad_donations_are_400_naming_the_field_and_change_nothing(
    client, admin_token, db, change, status, field
):
    world = await live_world(client, admin_token)
    donor = await register(client)
    r = await donate(client, donor, world, **{"amount": 10_000, **change})
    assert r.status_code == status, r.text
    assert r.json()["error"]["details"]["field"] == field
    async with db.reader() as s:
        n = await s.scalar(
            text("SELECT count(*) FROM donations WHERE donor_id = :d"), {"d": donor.id}
        )
    assert n == 0


async def test_donations_need_a_key_a_login_a_known_charity_and_a_live_room(client, admin_token):
    world = await live_world(client, admin_token)
    donor = await register(client)
    body = {"charity_id": world.charity["id"], "amount": 1000}
    r = await client.post("/api/donations", headers=donor.headers, json=body)
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "Idempotency-Key"
    r = await client.post("/api/donations", headers={"Idempotency-Key": "k"}, json=body)
    assert r.status_code == 401
    r = await donate(client, donor, world, 1000, charity_id="chr_nope")
    assert r.status_code in (400, 404)
    other = await build_world(client, admin_token)
    r = await donate(client, donor, world, 1000, session_id=other.session["id"])
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "charity_id"
    r = await donate(client, donor, other, 1000)  # that room never went live
    assert r.status_code == 409 and r.json()["error"]["code"] == "session_not_live"
    r = await client.post(
        "/api/donations",
        headers={**donor.headers, "Idempotency-Key": secrets.token_hex(4)},
        json={"charity_id": other.charity["id"], "amount": 5000},
    )
    assert r.status_code == 201  # no room: straight to the charity


async def test_every_public_surface_shows_the_name_the_giver_chose(client, admin_token, app, db):
    world = await live_world(client, admin_token)
    tag = secrets.token_hex(3)
    shown_as = {}
    for visibility, full in (
        ("public", f"Siti Rahma {tag}"),
        ("first_name", f"Budi{tag} Santoso"),
        ("anonymous", f"Rahasia{tag} Sekali"),
    ):
        r = await client.post(
            "/api/auth/register",
            json={
                "handle": f"g_{visibility}_{tag}",
                "password": "correct horse battery",
                "display_name": full,
            },
        )
        assert r.status_code == 201, r.text
        donor = Actor(r.json()["user"], r.json()["token"])
        gift = await donate_and_pay(client, donor, world, 10_000, visibility=visibility)
        [event] = [
            e
            for e in await session_events(db, world.session["id"], "donation")
            if e["donation_id"] == gift["id"]
        ]
        shown_as[visibility] = event["display_name"]
    assert shown_as == {
        "public": f"Siti Rahma {tag}",
        "first_name": f"Budi{tag}",
        "anonymous": "Anonymous",
    }
    from donations.charity.totals import session_totals

    top = (await session_totals(app.state.services.db, world.session["id"]))["top_donors"]
    # The anonymous are not one giver to rank: their gifts count, their "name" does not.
    assert {d["display_name"] for d in top} == set(shown_as.values()) - {"Anonymous"}
    public = (
        await client.get(
            f"/api/sessions/{world.session['id']}/donation-messages", headers=world.host.headers
        )
    ).text
    assert f"Rahasia{tag}" not in public


async def test_the_websocket_entry_point_shares_the_http_rules(app, client, admin_token):
    world = await live_world(client, admin_token)
    donor = await register(client)
    from core.auth import Principal

    me = Principal(donor.id, frozenset({"viewer"}))
    frame = {
        "type": "donate",
        "id": "c2",
        "charity_id": world.charity["id"],
        "session_id": world.session["id"],
        "amount": 50_000,
        "message": "dari socket",
        "visibility": "anonymous",
    }
    out, _ = await gifts.donate(
        app.state.services, me, *gift_frame({**frame, "idempotency_key": "k1"})
    )
    assert out["donation"]["status"] == "pending" and out["payment"]["id"].startswith("dpy_")
    again, _ = await gifts.donate(
        app.state.services, me, *gift_frame({**frame, "idempotency_key": "k1"})
    )
    assert again["donation"]["id"] == out["donation"]["id"]
    with pytest.raises(ApiError) as err:
        gift_frame({**frame, "amount": -5, "idempotency_key": "k2"})
    assert err.value.status == 400 and err.value.details["field"] == "amount"


async def test_the_host_reads_out_approves_and_hides_donor_messages(client, admin_token):
    world = await live_world(client, admin_token)
    donor = await register(client)
    a = await donate_and_pay(client, donor, world, 10_000, message="Salam dari Bandung")
    b = await donate_and_pay(client, donor, world, 10_000, message="spam spam")
    await donate_and_pay(client, donor, world, 10_000)
    url = f"/api/sessions/{world.session['id']}/donation-messages"
    assert (await client.get(url, headers=donor.headers)).status_code == 403
    queue = (await client.get(url, headers=world.host.headers)).json()["messages"]
    assert [m["donation_id"] for m in queue] == [a["id"], b["id"]]
    # Its donor may read the gift but not moderate it; to anyone else it does not exist.
    act = {"action": "approve"}
    moderate = f"/api/donations/{a['id']}/message"
    assert (await client.post(moderate, headers=donor.headers, json=act)).status_code == 403
    stranger = await register(client)
    r = await client.post(moderate, headers=stranger.headers, json=act)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
    for d, action in ((a, "read"), (b, "hide")):
        r = await client.post(
            f"/api/donations/{d['id']}/message", headers=world.host.headers, json={"action": action}
        )
        assert r.status_code == 200, r.text
    assert (await client.get(url, headers=world.host.headers)).json()["messages"] == []
    hidden = (await client.get(url + "?status=hidden", headers=world.host.headers)).json()
    assert [m["donation_id"] for m in hidden["messages"]] == [b["id"]]


async def test_a_sponsor_matches_gifts_and_pledges_until_the_cap_and_refunds_reverse_it(
    app, client, admin_token, db
):
    world, listing = await live_listing(client, admin_token, stock=5, pledge_bps=1000)
    sponsor = await user_with_roles(client, admin_token, "sponsor")
    r = await client.post(
        f"/api/sessions/{world.session['id']}/matches",
        headers=sponsor.headers,
        json={"sponsor_name": "Bank Tani", "ratio_bps": 10_000, "cap": 60_000},
    )
    assert r.status_code == 201, r.text
    match = r.json()
    assert match["remaining"] == 60_000
    donor = await register(client)
    await donate_and_pay(client, donor, world, 40_000)
    buyer = await register(client)
    placed = (await order(client, buyer, listing["id"])).json()["order"]
    assert placed["pledge_amount"] == 9_500
    await pay(client, buyer, placed)
    await settle_all(app.state.services)
    await donate_and_pay(client, donor, world, 30_000)  # only 10,500 of the cap is left
    matches = await session_events(db, world.session["id"], "match")
    assert [(m["amount"], m["remaining"]) for m in matches] == [
        (40_000, 20_000),
        (9_500, 10_500),
        (10_500, 0),
    ]
    report = (await client.get(f"/api/sessions/{world.session['id']}/charity-report")).json()
    assert report["matched"] == 60_000 and report["pledged"] == 9_500
    assert report["donated"] == 70_000

    r = await client.post(f"/api/orders/{placed['id']}/cancel", headers=world.host.headers)
    assert r.status_code == 200, r.text
    matches = await session_events(db, world.session["id"], "match")
    assert (matches[-1]["amount"], matches[-1]["remaining"]) == (-9_500, 9_500)
    report = (await client.get(f"/api/sessions/{world.session['id']}/charity-report")).json()
    assert report["matched"] == 50_500 and report["pledged"] == 0
    charity = (await client.get(f"/api/charities/{world.charity['id']}/report")).json()
    idr = charity["currencies"]["IDR"]
    assert idr["received"] == idr["pledges"] + idr["donations"] + idr["matched"] - idr["reversals"]
    assert idr["reversals"] == 9_500 + 9_500 and idr["received"] == 70_000 + 50_500
    await assert_ledger_invariants(db)
    await assert_charity_books(db, world.charity["id"])

    r = await client.post(
        f"/api/sessions/{world.session['id']}/matches",
        headers=donor.headers,
        json={"sponsor_name": "x", "ratio_bps": 1, "cap": 1},
    )
    assert r.status_code == 403


async def test_a_pledge_receipt_traces_the_order_s_charity_money(
    app, client, admin_token, settings
):
    _, listing = await live_listing(client, admin_token, stock=5, pledge_per_unit=5_000)
    buyer = await register(client)
    placed = (await order(client, buyer, listing["id"], quantity=2)).json()["order"]
    await pay(client, buyer, placed)
    r = await client.get(f"/api/orders/{placed['id']}/pledge-receipt", headers=buyer.headers)
    assert r.status_code == 409  # paid, not settled yet
    await settle_all(app.state.services)
    r = await client.get(f"/api/orders/{placed['id']}/pledge-receipt", headers=buyer.headers)
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["order"]["amount"] == 10_000
    verify_receipt(receipt, _key(settings).verifier)


async def test_crossing_a_goal_step_announces_a_milestone(client, admin_token, db):
    world = await live_world(client, admin_token)
    r = await client.post(
        f"/api/charities/{world.charity['id']}/campaigns",
        headers=world.charity_admin.headers,
        json={"title": "Buku", "unit_name": "Book", "unit_cost": 10_000, "goal_units": 20},
    )
    campaign = r.json()
    r = await client.post(
        "/api/sessions",
        headers=world.host.headers,
        json={
            "title": "Buku untuk desa",
            "charity_id": world.charity["id"],
            "campaign_id": campaign["id"],
            "currency": "IDR",
        },
    )
    session = r.json()
    await client.post(f"/api/sessions/{session['id']}/start", headers=world.host.headers)
    room = World(**{**world.__dict__, "session": session})
    donor = await register(client)
    await donate_and_pay(client, donor, room, 15_000)  # 1 book: below the first step (2)
    await donate_and_pay(client, donor, room, 10_000)  # 2 books: first step
    await donate_and_pay(client, donor, room, 5_000)  # 3 books: same step
    await donate_and_pay(client, donor, room, 200_000)  # 23 books: past the goal
    events = await session_events(db, session["id"], "milestone")
    assert [(e["funded_units"], e["goal_units"]) for e in events] == [(2, 20), (23, 20)]


async def test_disbursements_spend_oldest_money_first_and_never_more_than_received(
    client, admin_token, db, settings
):
    world = await live_world(client, admin_token)
    donor = await register(client)
    first = await donate_and_pay(client, donor, world, 30_000)
    second = await donate_and_pay(client, donor, world, 50_000)
    url = f"/api/charities/{world.charity['id']}/disbursements"
    evidence = hashlib.sha256(b"receipt-scan.pdf").hexdigest()
    body = {"amount": 90_000, "purpose": "School kits", "evidence_sha256": evidence}
    r = await client.post(url, headers=world.charity_admin.headers, json=body)
    assert r.status_code == 409 and r.json()["error"]["code"] == "insufficient_funds"
    assert r.json()["error"]["details"]["available"] == 80_000
    r = await client.post(url, headers=donor.headers, json={**body, "amount": 10})
    assert r.status_code == 403
    r = await client.post(
        url, headers=world.charity_admin.headers, json={**body, "evidence_sha256": "abc"}
    )
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "evidence_sha256"

    r = await client.post(
        url, headers=world.charity_admin.headers, json={**body, "amount": 45_000, "units": 3}
    )
    assert r.status_code == 201, r.text
    d = r.json()
    assert [a["amount"] for a in d["allocations"]] == [30_000, 15_000]
    listed = (await client.get(url)).json()["disbursements"]
    assert listed[0]["id"] == d["id"] and listed[0]["evidence_sha256"] == evidence

    for gift, spent in ((first, 30_000), (second, 15_000)):
        receipt = (
            await client.get(f"/api/donations/{gift['id']}/receipt", headers=donor.headers)
        ).json()
        [t] = receipt["trace"]
        assert (t["disbursement_id"], t["amount"], t["purpose"]) == (d["id"], spent, "School kits")
        assert t["evidence_sha256"] == evidence and t["entry_index"] == d["entry_index"]
        verify_receipt(receipt, _key(settings).verifier)

    r = await client.post(url, headers=world.charity_admin.headers, json={**body, "amount": 35_001})
    assert r.status_code == 409
    r = await client.post(url, headers=world.charity_admin.headers, json={**body, "amount": 35_000})
    assert r.status_code == 201
    report = (await client.get(f"/api/charities/{world.charity['id']}/report")).json()
    assert report["currencies"]["IDR"]["balance"] == 0
    assert report["currencies"]["IDR"]["disbursed"] == 80_000
    await assert_ledger_invariants(db)
    await assert_charity_books(db, world.charity["id"])


async def test_a_pledge_cannot_be_spent_until_its_order_is_delivered_so_a_refund_can_take_it_back(
    app, client, admin_token, db
):
    world, listing = await live_listing(client, admin_token, stock=5, pledge_bps=1000)
    buyer = await register(client)
    placed = (await order(client, buyer, listing["id"])).json()["order"]
    await pay(client, buyer, placed)
    await settle_all(app.state.services)
    r = await client.post(
        f"/api/charities/{world.charity['id']}/disbursements",
        headers=world.charity_admin.headers,
        json={"amount": 9_500, "purpose": "Books", "evidence_sha256": "a" * 64},
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "insufficient_funds"
    assert r.json()["error"]["details"]["available"] == 0  # received, not yet spendable
    r = await client.post(f"/api/orders/{placed['id']}/cancel", headers=world.host.headers)
    assert r.status_code == 200, r.text
    got = (await client.get(f"/api/orders/{placed['id']}", headers=buyer.headers)).json()
    assert got["order"]["status"] == "refunded"
    await assert_ledger_invariants(db)
    await assert_charity_books(db, world.charity["id"])


async def test_concurrent_gifts_log_without_gaps_and_every_receipt_verifies(
    client, admin_token, db, settings
):
    world = await live_world(client, admin_token)
    donors = [await register(client) for _ in range(8)]
    paid = await asyncio.gather(
        *(donate_and_pay(client, d, world, 1_000 + i) for i, d in enumerate(donors))
    )
    async with db.reader() as s:
        size, root = await log.head(s)
        rows = await log.entries(s, 0, size)
    assert [r.idx for r in rows] == list(range(size))
    assert merkle.root_of_leaves([merkle.leaf_hash(r.entry.encode()) for r in rows]) == root
    key = _key(settings)
    for donor, gift in zip(donors, paid, strict=True):
        receipt = (
            await client.get(f"/api/donations/{gift['id']}/receipt", headers=donor.headers)
        ).json()
        verify_receipt(receipt, key.verifier)
    latest = await checkpoint.publish(db, key)
    assert latest.size >= size
    await assert_charity_books(db, world.charity["id"])


async def test_panen_verify_accepts_a_real_donation_receipt(
    client, admin_token, settings, tmp_path
):
    import json
    import subprocess
    import sys

    from tests.conftest import process_env

    world = await live_world(client, admin_token)
    donor = await register(client)
    gift = await donate_and_pay(client, donor, world, 12_345)
    receipt = (
        await client.get(f"/api/donations/{gift['id']}/receipt", headers=donor.headers)
    ).json()
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    vkey = (await client.get("/api/transparency/public-key")).json()["vkey"]
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "panen", "verify", str(path), "--public-key", vkey],
        env=process_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "commitment opens to you" in out.stdout and "VERIFIED" in out.stdout
