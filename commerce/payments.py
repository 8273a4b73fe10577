"""Payments: a provider interface, the sandbox provider, and signed-webhook handling.

A webhook is trusted only when its HMAC-SHA256 over `"{timestamp}." + raw body` matches,
its timestamp is within `TOLERANCE_S` of our clock, and its event id has not been seen
(the id is recorded in the same transaction as the change it causes). The sandbox's
approve and decline endpoints build, sign and deliver exactly such a webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy import text
from starlette.responses import Response

from commerce import hooks, outbox
from commerce.order_models import Order, OrderStatusChange, Payment
from core.clock import utcnow
from core.errors import ApiError, bad_request, conflict, forbidden, not_found
from core.http import ANYONE, LOGGED_IN, Api, Ctx, json, read_body
from core.ids import new_id
from core.services import Services

DEFAULT_PROVIDER = "sandbox"
SIGNATURE_HEADER = "panen-signature"
TOLERANCE_S = 300
SETTLE_JOB = "settle_orders"


async def call_for_settlement(services: Services) -> None:
    """Ask some worker to settle: a webhook that paid an order calls this, and so does a
    settler that finds a backlog, so that idle workers join in. Calls within a quarter
    second coalesce into one job."""
    await services.enqueue(SETTLE_JOB, job_id=f"{SETTLE_JOB}:{int(time.time() * 4)}")


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str
    type: str  # payment.succeeded | payment.failed
    payment_id: str
    amount: int
    currency: str


class PaymentProvider(Protocol):
    """What a gateway (Midtrans, Xendit, Alipay, Stripe…) implements to take payments."""

    name: str

    async def create_intent(self, payment_id: str, amount: int, currency: str) -> str:
        """Open a payment with the provider; returns the provider's reference."""
        ...

    def verify_webhook(self, headers: dict[str, str], body: bytes, now: float) -> WebhookEvent:
        """Check the signature and timestamp of a delivery; raise ApiError 401 if bad."""
        ...

    async def refund(self, payment_id: str, amount: int) -> None: ...


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _bad_signature(message: str) -> ApiError:
    return ApiError(401, "bad_signature", message)


class SandboxProvider:
    """Approves or declines on request, and signs its webhooks like a real gateway."""

    name = "sandbox"

    def __init__(self, secret_key: str) -> None:
        self.secret = hmac.new(secret_key.encode(), b"sandbox-webhook", hashlib.sha256).digest()

    async def create_intent(self, payment_id: str, amount: int, currency: str) -> str:
        return f"sbx_{payment_id}"

    async def refund(self, payment_id: str, amount: int) -> None:
        return None

    def webhook(
        self, payment: Payment, succeeded: bool, now: float
    ) -> tuple[dict[str, str], bytes]:
        body = orjson.dumps(
            {
                "id": new_id("evt"),
                "type": "payment.succeeded" if succeeded else "payment.failed",
                "created": int(now),
                "data": {
                    "payment_id": payment.id,
                    "amount": payment.amount,
                    "currency": payment.currency,
                },
            }
        )
        return {SIGNATURE_HEADER: sign(self.secret, int(now), body)}, body

    def verify_webhook(self, headers: dict[str, str], body: bytes, now: float) -> WebhookEvent:
        header = headers.get(SIGNATURE_HEADER, "")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        stamp, given = parts.get("t", ""), parts.get("v1", "")
        if not stamp.isdigit() or not given:
            raise _bad_signature(f"missing or malformed {SIGNATURE_HEADER} header")
        expected = sign(self.secret, int(stamp), body).split("v1=", 1)[1]
        if not hmac.compare_digest(expected, given):
            raise _bad_signature("the signature does not match")
        if abs(now - int(stamp)) > TOLERANCE_S:
            raise _bad_signature("the webhook timestamp is too old or in the future")
        try:
            raw = orjson.loads(body)
            data = raw["data"]
            event = WebhookEvent(
                id=str(raw["id"]),
                type=str(raw["type"]),
                payment_id=str(data["payment_id"]),
                amount=int(data["amount"]),
                currency=str(data["currency"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise bad_request("malformed_webhook", "the webhook body is not understood") from None
        if event.type not in ("payment.succeeded", "payment.failed"):
            raise bad_request("malformed_webhook", f"unknown event type {event.type!r}", "type")
        return event


_providers: dict[tuple[str, str], PaymentProvider] = {}


def provider_for(services: Services, name: str) -> PaymentProvider:
    key = (name, services.settings.secret_key)
    if key not in _providers:
        if name != "sandbox":
            raise not_found("payment provider", name)
        _providers[key] = SandboxProvider(services.settings.secret_key)
    return _providers[key]


async def handle_webhook(
    services: Services, provider_name: str, headers: dict[str, str], body: bytes
) -> dict[str, Any]:
    """Apply one signed provider event, at most once. Bad signature: 401, nothing changes."""
    provider = provider_for(services, provider_name)
    event = provider.verify_webhook(headers, body, time.time())
    owner = hooks.payment_owner(event.payment_id)
    if owner is not None:  # not an order's payment (a donation's): its owner applies it
        return await owner.apply_webhook(services, provider.name, event)
    settle = False
    async with services.db.transaction() as s:
        fresh = await s.scalar(
            text(
                "INSERT INTO webhook_events (provider, event_id, payment_id) VALUES (:p, :e, :pay)"
                " ON CONFLICT DO NOTHING RETURNING event_id"
            ),
            {"p": provider.name, "e": event.id, "pay": event.payment_id},
        )
        if fresh is None:
            return {"status": "duplicate", "event_id": event.id}
        payment = await s.get(Payment, event.payment_id, with_for_update=True)
        if payment is None or payment.provider != provider.name:
            return {"status": "ignored", "reason": "unknown payment", "event_id": event.id}
        if (event.amount, event.currency) != (payment.amount, payment.currency):
            return {"status": "ignored", "reason": "amount mismatch", "event_id": event.id}
        if payment.status != "pending":
            return {"status": "ignored", "reason": f"payment {payment.status}"}
        order = await s.get(Order, payment.order_id, with_for_update=True)
        assert order is not None
        now = utcnow()
        payment.updated_at = now
        if event.type == "payment.failed":
            payment.status = "failed"
            if order.status == "reserved":
                order.status, order.closed_at = "cancelled", now
                s.add(
                    OrderStatusChange(order_id=order.id, status="cancelled", note="payment failed")
                )
                await outbox.add(
                    s,
                    [
                        outbox.release_row(
                            order.session_id, order.inventory_id, order.listing_id, order.id
                        )
                    ],
                )
        elif order.status == "reserved":
            payment.status = "succeeded"
            order.status, order.paid_at = "paid", now
            s.add(OrderStatusChange(order_id=order.id, status="paid", note=f"event {event.id}"))
            settle = True
        else:
            # Paid after the reservation lapsed: the money goes straight back.
            await provider.refund(payment.id, payment.amount)
            payment.status = "refunded"
            s.add(
                OrderStatusChange(
                    order_id=order.id, status=order.status, note="late payment refunded"
                )
            )
        status = payment.status
    if settle and services.jobs is not None:
        await call_for_settlement(services)
    else:
        await outbox.relay(services)
    return {"status": "applied", "event_id": event.id, "payment_status": status}


async def _sandbox_decide(ctx: Ctx, succeeded: bool) -> Response:
    payment_id = ctx.path("payment_id")
    owner = hooks.payment_owner(payment_id)
    if owner is not None:
        return json(await owner.sandbox_decide(ctx.services, ctx.user, payment_id, succeeded))
    async with ctx.services.db.reader() as s:
        payment = await s.get(Payment, payment_id)
    if payment is None or payment.provider != "sandbox":
        raise not_found("payment", payment_id)
    if payment.payer_id != ctx.user.user_id and not ctx.user.is_admin:
        raise forbidden("only the payer may approve or decline this payment")
    if payment.status != "pending":
        raise conflict(
            "payment_not_pending", f"this payment is {payment.status}", status=payment.status
        )
    provider = provider_for(ctx.services, "sandbox")
    assert isinstance(provider, SandboxProvider)
    headers, body = provider.webhook(payment, succeeded, time.time())
    result = await handle_webhook(ctx.services, "sandbox", headers, body)
    async with ctx.services.db.reader() as s:
        payment = await s.get(Payment, payment_id)
        order = await s.get(Order, payment.order_id) if payment else None
    assert payment is not None and order is not None
    if succeeded and payment.status != "succeeded":
        raise conflict(
            "order_not_payable", f"the order is {order.status}", status=order.status, webhook=result
        )
    return json(
        {
            "payment": {
                "id": payment.id,
                "provider": payment.provider,
                "status": payment.status,
                "amount": payment.amount,
                "currency": payment.currency,
                "order_id": payment.order_id,
            },
            "order": {"id": order.id, "status": order.status},
        }
    )


api = Api()


@api.post("/api/payments/{payment_id}/sandbox/approve", LOGGED_IN)
async def sandbox_approve(ctx: Ctx) -> Response:
    return await _sandbox_decide(ctx, True)


@api.post("/api/payments/{payment_id}/sandbox/decline", LOGGED_IN)
async def sandbox_decline(ctx: Ctx) -> Response:
    return await _sandbox_decide(ctx, False)


@api.post("/api/payments/webhook/{provider}", ANYONE)
async def webhook(ctx: Ctx) -> Response:
    body = await read_body(ctx.request, ctx.services.settings.max_body_bytes)
    headers = {k.lower(): v for k, v in ctx.request.headers.items()}
    return json(await handle_webhook(ctx.services, ctx.path("provider"), headers, body))
