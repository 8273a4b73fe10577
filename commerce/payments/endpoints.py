"""HTTP: the sandbox's approve and decline, and provider webhooks."""

from __future__ import annotations

import time

from starlette.responses import Response

from commerce import hooks
from commerce.orders.models import Order
from commerce.payments.models import Payment
from commerce.payments.providers import SandboxProvider, provider_for
from commerce.payments.service import handle_webhook
from core.errors import conflict, forbidden, not_found
from core.http import ANYONE, LOGGED_IN, Api, Ctx, json, read_body


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
