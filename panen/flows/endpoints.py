"""HTTP of the flows: provider webhooks, the sandbox's approve and decline, cancelling."""

from __future__ import annotations

from starlette.responses import Response

from commerce.orders.schemas import OrderReply
from commerce.payments.schemas import WebhookAnswer
from core.http import ANYONE, LOGGED_IN, Api, Ctx, json, read_body
from panen.flows import payment, refund
from panen.flows.payment import SandboxReply

api = Api()


@api.post("/api/payments/webhook/{provider}", ANYONE, response=WebhookAnswer)
async def webhook(ctx: Ctx) -> Response:
    body = await read_body(ctx.request, ctx.services.settings.max_body_bytes)
    headers = {k.lower(): v for k, v in ctx.request.headers.items()}
    return json(await payment.apply_event(ctx.services, ctx.path("provider"), headers, body))


@api.post("/api/payments/{payment_id}/sandbox/approve", LOGGED_IN, response=SandboxReply)
async def sandbox_approve(ctx: Ctx) -> Response:
    return json(await payment.sandbox_decide(ctx.services, ctx.user, ctx.path("payment_id"), True))


@api.post("/api/payments/{payment_id}/sandbox/decline", LOGGED_IN, response=SandboxReply)
async def sandbox_decline(ctx: Ctx) -> Response:
    return json(await payment.sandbox_decide(ctx.services, ctx.user, ctx.path("payment_id"), False))


@api.post("/api/orders/{order_id}/cancel", LOGGED_IN, response=OrderReply)
async def cancel(ctx: Ctx) -> Response:
    return json({"order": await refund.cancel_order(ctx.services, ctx.user, ctx.path("order_id"))})
