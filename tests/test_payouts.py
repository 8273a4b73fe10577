"""Farmers paid: a payout run pays each farmer exactly what they may be paid (their settled
balance, less what waits for its boxes to be delivered), once, however often it is started
or wherever it is killed; a failed transfer puts the money back; the ledger balances.
Through a bank file an operator reports on, and through Iris (`panen emulator`)."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from commerce.payouts import service as payouts
from core.db import Database
from core.services import Services
from core.settings import Settings
from tests.api import auth, live_listing, order, pay, register
from tests.checks import assert_ledger_invariants
from tests.conftest import process_env
from tests.processes import Emulator, Server, Worker, free_port, running


async def sale_on_its_way(http: httpx.AsyncClient, admin_token: str, units: int = 2) -> Any:
    """A farmer whose sale of `units` settled, its box not yet delivered; returns (world,
    what the farmer earned, the buyer)."""
    world, listing = await live_listing(http, admin_token, stock=10, pledge_bps=1000)
    buyer = await register(http)
    placed = (await order(http, buyer, listing["id"], units)).json()["order"]
    assert (await pay(http, buyer, placed)).status_code == 200
    deadline = time.monotonic() + 20
    while True:
        o = (await http.get(f"/api/orders/{placed['id']}", headers=buyer.headers)).json()
        if o["order"]["status"] == "settled":
            return world, o["order"]["farmer_amount"] + o["order"]["shipping_fee"], buyer
        assert time.monotonic() < deadline, "the sale never settled"
        await asyncio.sleep(0.1)


async def deliver(http: httpx.AsyncClient, world: Any, buyer: Any) -> None:
    """The farmer ships the buyer's box and the buyer confirms it arrived: the sale is
    complete, and its farmer's share may be paid out."""
    [box] = (await http.get("/api/me/shipments", headers=buyer.headers)).json()["shipments"]
    url = f"/api/shipments/{box['id']}/status"
    shipped = {"status": "shipped", "courier": "JNE", "tracking_number": "JNE123456"}
    r = await http.post(url, headers=world.farmer.headers, json=shipped)
    assert r.status_code == 200, r.text
    r = await http.post(url, headers=buyer.headers, json={"status": "completed"})
    assert r.status_code == 200, r.text


async def farmer_with_a_sale(http: httpx.AsyncClient, admin_token: str, units: int = 2) -> Any:
    """A farmer whose sale of `units` was delivered; returns (world, what they earned)."""
    world, earned, buyer = await sale_on_its_way(http, admin_token, units)
    await deliver(http, world, buyer)
    return world, earned


async def give_account(http: httpx.AsyncClient, world: Any, number: str = "1234567890") -> None:
    r = await http.post(
        f"/api/farmers/{world.farmer_id}/payout-account",
        headers=world.farmer.headers,
        json={"bank": "BCA", "account_number": number, "holder_name": "Pak Budi"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["account_number"].endswith(number[-4:]) and "•" in r.json()["account_number"]


async def balance(http: httpx.AsyncClient, world: Any) -> dict[str, Any]:
    r = await http.get(f"/api/farmers/{world.farmer_id}/payouts", headers=world.farmer.headers)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


async def start(http: httpx.AsyncClient, admin_token: str, run_id: str) -> dict[str, Any]:
    r = await http.post(
        "/api/admin/payout-runs", headers=auth(admin_token), json={"run_id": run_id}
    )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def mine(run: dict[str, Any], world: Any) -> list[dict[str, Any]]:
    return [p for p in run["made"] if p["farmer_id"] == world.farmer_id]


async def payable(db: Database, world: Any) -> int:
    async with db.reader() as s:
        return int(
            await s.scalar(
                text(
                    "SELECT coalesce(sum(amount), 0) FROM ledger_postings WHERE account_code = :a"
                ),
                {"a": f"farmer_payable:{world.farmer_id}"},
            )
        )


# --- Bank file ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bank_file_server(settings: Settings) -> Iterator[Server]:
    env = process_env(settings)
    server = Server(env)
    with running(server, Worker(env)):
        yield server


@pytest.fixture
async def http(bank_file_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=bank_file_server.base, timeout=30) as c:
        yield c


async def test_a_run_pays_each_farmer_their_balance_once_after_delivery(
    http, admin_token, db: Database
) -> None:
    b, earned_b = await farmer_with_a_sale(http, admin_token, units=3)
    unpaid, _ = await farmer_with_a_sale(http, admin_token)  # no account: not paid
    a, earned_a, a_buyer = await sale_on_its_way(http, admin_token, units=2)
    await give_account(http, a)
    # Until its box is delivered and kept the money is owed but held.
    [held] = (await balance(http, a))["balances"]
    assert (held["owed"], held["awaiting_delivery"], held["available"]) == (earned_a, earned_a, 0)
    assert mine(await start(http, admin_token, "early"), a) == []
    await deliver(http, a, a_buyer)
    await give_account(http, b)
    [ready] = (await balance(http, a))["balances"]
    assert (ready["awaiting_delivery"], ready["available"]) == (0, earned_a)
    # Started three times at once, and again: each farmer is paid once, to the rupiah.
    runs = await asyncio.gather(*(start(http, admin_token, "r1") for _ in range(3)))
    again = await start(http, admin_token, "r1")
    made_a = [p for r in (*runs, again) for p in mine(r, a)]
    made_b = [p for r in (*runs, again) for p in mine(r, b)]
    assert [p["amount"] for p in made_a] == [earned_a]
    assert [p["amount"] for p in made_b] == [earned_b]
    assert all(not mine(r, unpaid) for r in (*runs, again))
    assert mine(await start(http, admin_token, "r2"), a) == []  # nothing left to pay
    assert await payable(db, a) == 0
    [moving] = (await balance(http, a))["balances"]
    assert (moving["owed"], moving["in_transit"], moving["paid_out"]) == (0, earned_a, 0)
    # The operator uploads the bank file, then reports: a paid, b returned by the bank.
    r = await http.get("/api/admin/payouts/bank-file?run_id=r1", headers=auth(admin_token))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    by_id = {row["payout_id"]: row for row in rows}
    assert by_id[made_a[0]["id"]]["account_number"] == "1234567890"
    assert int(by_id[made_b[0]["id"]]["amount"]) == earned_b
    r = await http.post(
        f"/api/admin/payouts/{made_a[0]['id']}/complete", headers=auth(admin_token), json={}
    )
    assert r.status_code == 200 and r.json()["status"] == "completed"
    r = await http.post(
        f"/api/admin/payouts/{made_b[0]['id']}/fail",
        headers=auth(admin_token),
        json={"reason": "account closed"},
    )
    assert r.status_code == 200 and r.json()["status"] == "failed"
    [paid] = (await balance(http, a))["balances"]
    assert (paid["in_transit"], paid["paid_out"]) == (0, earned_a)
    assert await payable(db, b) == earned_b  # back in b's balance, for the next run
    assert [p["amount"] for p in mine(await start(http, admin_token, "r3"), b)] == [earned_b]
    totals = (await http.get(f"/api/farmers/{a.farmer_id}/totals", headers=a.farmer.headers)).json()
    assert (totals["payout_pending"], totals["payout_settled"]) == (0, earned_a)
    await assert_ledger_invariants(db)


async def test_only_the_farmer_or_an_admin_sees_or_sets_payouts_and_reports_are_checked(
    http, admin_token
) -> None:
    world, _ = await farmer_with_a_sale(http, admin_token)
    stranger = await register(http)
    r = await http.get(f"/api/farmers/{world.farmer_id}/payouts", headers=stranger.headers)
    assert r.status_code == 403
    r = await http.post(
        f"/api/farmers/{world.farmer_id}/payout-account",
        headers=stranger.headers,
        json={"bank": "bca", "account_number": "1234567890", "holder_name": "Maling"},
    )
    assert r.status_code == 403
    for bad in (
        {"bank": "bank_of_mars", "account_number": "1234567890", "holder_name": "X"},
        {"bank": "bca", "account_number": "12-34", "holder_name": "X"},
        {"bank": "bca", "account_number": "1234567890", "holder_name": ""},
        # A line break would forge a line of the bank file.
        {"bank": "bca", "account_number": "1234567890", "holder_name": "Budi\r\npyo_x,bca,9"},
    ):
        r = await http.post(
            f"/api/farmers/{world.farmer_id}/payout-account",
            headers=world.farmer.headers,
            json=bad,
        )
        assert r.status_code == 400, bad
    r = await http.post("/api/admin/payout-runs", headers=world.farmer.headers, json={})
    assert r.status_code == 403
    r = await http.post(
        "/api/admin/payouts/pyo_nothing/complete", headers=auth(admin_token), json={}
    )
    assert r.status_code == 404


# --- Iris ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris(settings: Settings) -> Iterator[tuple[Server, Emulator, dict[str, str]]]:
    port = free_port()
    emulator = Emulator(
        process_env(settings), iris_callback=f"http://127.0.0.1:{port}/api/payouts/callback/iris"
    )
    env = {
        **process_env(settings),
        **emulator.settings_env(f"http://127.0.0.1:{port}"),
        "PANEN_PAYOUT_PROVIDER": "iris",
    }
    server = Server(env, port=port)
    with running(emulator, server, Worker(env)):
        yield server, emulator, env


async def control(emulator: Emulator, action: str, **body: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(f"{emulator.base}/_emulator/{action}", json=body)
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer


async def until_status(http: httpx.AsyncClient, world: Any, payout_id: str, want: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        found = {p["id"]: p["status"] for p in (await balance(http, world))["payouts"]}
        if found.get(payout_id) == want:
            return
        assert time.monotonic() < deadline, f"payout {payout_id} never became {want}: {found}"
        await asyncio.sleep(0.1)


async def test_through_iris_a_payout_completes_or_fails_on_its_signed_callback(
    iris, admin_token, db: Database
) -> None:
    server, emulator, env = iris
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
        a, earned_a = await farmer_with_a_sale(http, admin_token)
        b, earned_b = await farmer_with_a_sale(http, admin_token)
        for world in (a, b):
            await give_account(http, world)
        run = await start(http, admin_token, "iris-1")
        [pa], [pb] = mine(run, a), mine(run, b)
        assert (pa["amount"], pb["amount"]) == (earned_a, earned_b)
        for p in (pa, pb):
            await until_status(http, a if p is pa else b, p["id"], "submitted")
        sent = {p["reference_no"]: p for p in (await control(emulator, "payouts"))["payouts"]}
        refs = {
            p["id"]: p["provider_ref"] for w in (a, b) for p in (await balance(http, w))["payouts"]
        }
        assert sent[refs[pa["id"]]]["amount"] == f"{earned_a}.00"
        assert sent[refs[pa["id"]]]["status"] == "approved"
        await control(emulator, "payout_complete", reference_no=refs[pa["id"]])
        await control(emulator, "payout_fail", reference_no=refs[pb["id"]], reason="closed")
        await until_status(http, a, pa["id"], "completed")
        await until_status(http, b, pb["id"], "failed")
        assert await payable(db, b) == earned_b
        forged = await http.post(
            "/api/payouts/callback/iris",
            content=b'{"reference_no":"x","status":"completed"}',
            headers={"Iris-Signature": "0" * 128},
        )
        assert forged.status_code == 401
        # Signed, but holding what PostgreSQL cannot store: refused, not a 500.
        body = b'{"reference_no":"a\\u0000b","status":"completed"}'
        key = env["PANEN_IRIS_MERCHANT_KEY"].encode()
        odd = await http.post(
            "/api/payouts/callback/iris",
            content=body,
            headers={"Iris-Signature": hashlib.sha512(body + key).hexdigest()},
        )
        assert (odd.status_code, odd.json()["error"]["code"]) == (400, "malformed_webhook")
    await assert_ledger_invariants(db)


async def test_a_run_whose_transfers_could_not_be_handed_over_finishes_them_later_once(
    iris, admin_token, db: Database
) -> None:
    server, emulator, env = iris
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
        world, earned = await farmer_with_a_sale(http, admin_token)
        await give_account(http, world)
        await control(emulator, "down", seconds=3)
        [made] = mine(await start(http, admin_token, "iris-down"), world)
        assert made["status"] == "pending" and made["amount"] == earned
        assert await payable(db, world) == 0  # the money is in transit, not paid twice
        await asyncio.sleep(3.2)
        # The sweep (a worker's cron) hands it over; a second sweep changes nothing.
        services = await Services.start(Settings.from_env(env))
        try:
            assert await payouts.sweep(services, older_than_s=0) >= 1
            await payouts.sweep(services, older_than_s=0)
        finally:
            await services.close()
        await until_status(http, world, made["id"], "submitted")
        with_ref = [
            p
            for p in (await control(emulator, "payouts"))["payouts"]
            if p["notes"].endswith(made["id"])
        ]
        assert len(with_ref) == 1  # one transfer at Iris, however often it was asked
    await assert_ledger_invariants(db)


async def test_the_farmer_sets_their_account_and_sees_each_number_named_on_a_phone(
    http, bank_file_server, admin_token
) -> None:
    from playwright.async_api import expect

    from tests.pages import chromium, tab

    world, earned = await farmer_with_a_sale(http, admin_token)
    farmer = world.farmer
    async with (
        chromium() as browser,
        tab(browser, bank_file_server.base, farmer.token, farmer.user) as t,
    ):
        await t.page.goto("/farmer")
        await expect(t.page.locator("#account-now")).to_contain_text("No account yet")
        row = t.page.locator("#balances tr").first
        await expect(row).to_contain_text("IDR")
        await t.page.select_option("#acc-bank", "bri")
        await t.page.fill("#acc-number", "0011223344556")
        await t.page.fill("#acc-holder", "Ibu Siti")
        await t.page.click("#account-form button[type=submit]")
        await expect(t.page.locator("#account-now")).to_contain_text("BRI")
        await expect(t.page.locator("#account-now")).to_contain_text("4556")
        await expect(t.page.locator("#account-now")).not_to_contain_text("0011223344556")
        [made] = mine(await start(http, admin_token, f"page-{world.farmer_id}"), world)
        assert made["amount"] == earned
        await t.page.reload()
        await expect(t.page.locator("#payout-list tr").first).to_contain_text("sent")
        await expect(t.page.locator("#f-transit")).not_to_have_text("IDR\u00a00")
        assert t.errors == []
