"""Signed webhooks: only a correctly signed, fresh, first-seen event changes anything."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from commerce.payments.providers import SIGNATURE_HEADER, SandboxProvider, sign
from tests.api import live_listing, order, register
from tests.checks import assert_ledger_invariants


def event(payment: dict, kind: str = "payment.succeeded", event_id: str = "evt_1") -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "type": kind,
            "created": int(time.time()),
            "data": {"payment_id": payment["id"], "amount": payment["amount"], "currency": "IDR"},
        }
    )


async def state(client, buyer, order_id: str) -> tuple[str, str]:
    o = (await client.get(f"/api/orders/{order_id}", headers=buyer.headers)).json()["order"]
    return o["status"], o["payment"]["status"]


async def test_forged_stale_and_tampered_webhooks_are_refused_and_change_nothing(
    client, admin_token, settings, db
):
    _, listing = await live_listing(client, admin_token, stock=5)
    buyer = await register(client)
    placed = (await order(client, buyer, listing["id"])).json()["order"]
    payment = {"id": placed["payment"]["id"], "amount": placed["total"]}
    body = event(payment, event_id=f"evt_forged_{placed['id']}")
    now = int(time.time())
    right = SandboxProvider(settings.secret_key).secret
    for header in (
        sign(b"not the sandbox secret", now, body),  # forged
        sign(right, now - 3600, body),  # stale: an hour old
        sign(right, now, body).replace("v1=", "v1=0"),  # mangled
        "",  # missing
        f"t={now}",
    ):
        r = await client.post(
            "/api/payments/webhook/sandbox", content=body, headers={SIGNATURE_HEADER: header}
        )
        assert r.status_code == 401, (header, r.text)
        assert r.json()["error"]["code"] == "bad_signature"
    # A correctly signed body that was altered afterwards (amount lowered) fails too.
    tampered = body.replace(str(payment["amount"]).encode(), b"1")
    r = await client.post(
        "/api/payments/webhook/sandbox",
        content=tampered,
        headers={SIGNATURE_HEADER: sign(right, now, body)},
    )
    assert r.status_code == 401
    r = await client.post(
        "/api/payments/webhook/nowhere", content=body, headers={SIGNATURE_HEADER: ""}
    )
    assert r.status_code == 404
    assert await state(client, buyer, placed["id"]) == ("reserved", "pending")
    await assert_ledger_invariants(db)


async def test_a_replayed_webhook_is_acknowledged_once_and_applied_once(
    client, admin_token, settings, db
):
    _, listing = await live_listing(client, admin_token, stock=5)
    buyer = await register(client)
    placed = (await order(client, buyer, listing["id"])).json()["order"]
    payment = {"id": placed["payment"]["id"], "amount": placed["total"]}
    body = event(payment, event_id=f"evt_replay_{placed['id']}")
    headers = {
        SIGNATURE_HEADER: sign(SandboxProvider(settings.secret_key).secret, int(time.time()), body)
    }
    first = await client.post("/api/payments/webhook/sandbox", content=body, headers=headers)
    assert first.status_code == 200 and first.json()["status"] == "applied"
    assert await state(client, buyer, placed["id"]) == ("paid", "succeeded")
    for _ in range(3):
        again = await client.post("/api/payments/webhook/sandbox", content=body, headers=headers)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
    # A second, differently numbered "failed" event cannot undo a settled payment either.
    late = event(payment, "payment.failed", event_id=f"evt_late_{placed['id']}")
    headers = {
        SIGNATURE_HEADER: sign(SandboxProvider(settings.secret_key).secret, int(time.time()), late)
    }
    r = await client.post("/api/payments/webhook/sandbox", content=late, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "ignored"
    assert await state(client, buyer, placed["id"]) == ("paid", "succeeded")
    o = (await client.get(f"/api/orders/{placed['id']}", headers=buyer.headers)).json()["order"]
    assert [h["status"] for h in o["history"]] == ["reserved", "paid"]
    await assert_ledger_invariants(db)


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "evt_x", "type": "payment.succeeded"}',
        b'{"id": "evt\\u0000x", "type": "payment.succeeded", "data": {"payment_id": "pay_1",'
        b' "amount": 1, "currency": "IDR"}}',
    ],
)
async def test_a_malformed_but_signed_webhook_is_400(client, settings, body):
    headers = {
        SIGNATURE_HEADER: sign(SandboxProvider(settings.secret_key).secret, int(time.time()), body)
    }
    r = await client.post("/api/payments/webhook/sandbox", content=body, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_webhook"


async def test_only_the_payer_approves_and_a_decline_cancels_and_returns_stock(client, admin_token):
    _, listing = await live_listing(client, admin_token, stock=1)
    buyer, other = await register(client), await register(client)
    placed = (await order(client, buyer, listing["id"])).json()["order"]
    pay_id = placed["payment"]["id"]
    for action in ("approve", "decline"):  # to another user it does not exist
        r = await client.post(f"/api/payments/{pay_id}/sandbox/{action}", headers=other.headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
    r = await client.post(f"/api/payments/{pay_id}/sandbox/decline", headers=buyer.headers)
    assert r.status_code == 200 and r.json()["payment"]["status"] == "failed"
    assert await state(client, buyer, placed["id"]) == ("cancelled", "failed")
    r = await client.post(f"/api/payments/{pay_id}/sandbox/approve", headers=buyer.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "payment_not_pending"
    assert (await order(client, other, listing["id"])).status_code == 201


async def test_an_approve_and_a_decline_at_the_same_moment_decide_the_payment_once(
    client, admin_token
):
    _, listing = await live_listing(client, admin_token, stock=20)
    for _ in range(5):
        buyer = await register(client)
        placed = (await order(client, buyer, listing["id"])).json()["order"]
        pay_id = placed["payment"]["id"]
        answers = await asyncio.gather(
            *(
                client.post(f"/api/payments/{pay_id}/sandbox/{action}", headers=buyer.headers)
                for action in ("approve", "decline", "approve")
            )
        )
        codes = sorted(r.status_code for r in answers)
        assert codes == [200, 409, 409], [r.text for r in answers]
        final = await state(client, buyer, placed["id"])
        # Either it was paid or it was declined, never declined and then paid back.
        assert final in (("paid", "succeeded"), ("settled", "succeeded"), ("cancelled", "failed"))


async def test_a_sandbox_approval_that_raced_a_checkout_to_another_provider_changes_nothing(
    client, admin_token, db
):
    """The approval read the payment as the sandbox's; a checkout then moved it to Midtrans.
    Under the payment's lock the flow sees whose it is now and leaves it alone (it was
    paid twice, the sandbox's money posted as Midtrans's)."""
    from sqlalchemy import text

    from commerce.payments.providers import SUCCEEDED, ProviderEvent
    from panen.flows import payment as flow

    _, listing = await live_listing(client, admin_token)
    buyer = await register(client)
    placed = (await order(client, buyer, listing["id"])).json()["order"]
    pid = placed["payment"]["id"]
    async with db.transaction() as s:
        await s.execute(text("UPDATE payments SET provider = 'midtrans' WHERE id = :p"), {"p": pid})
    event = ProviderEvent(
        id=f"evt_{pid}", type=SUCCEEDED, payment_id=pid, amount=placed["total"], currency="IDR"
    )
    outcome = await db.run(lambda s: flow._for_order(s, "sandbox", placed["id"], event))
    assert outcome.answer["status"] == "ignored" and not outcome.settle
    assert await state(client, buyer, placed["id"]) == ("reserved", "pending")
    await assert_ledger_invariants(db)
