"""HTTP of the flows: checkout, provider webhooks, the sandbox's approve and decline,
cancelling, the refunds an operator makes by hand, and a shipment's moves."""

from __future__ import annotations

from starlette.responses import Response

from commerce.orders.schemas import OrderReply
from commerce.payments import service as payments
from commerce.payments.schemas import (
    CheckoutReply,
    ChooseMethod,
    MethodList,
    PaymentReply,
    RefundsByHand,
    WebhookAnswer,
    payment_json,
)
from commerce.shipping.models import Shipment
from commerce.shipping.schemas import MoveShipment, ShipmentReply
from core.auth import Role
from core.clock import rfc3339
from core.errors import not_found
from core.http import ANYONE, LIMIT, LOGGED_IN, Api, Ctx, json, read_body, roles
from panen.flows import checkout, delivery, payment, refund
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


@api.get("/api/payments/methods", ANYONE, response=MethodList)
async def payment_methods(ctx: Ctx) -> Response:
    """The ways to pay this deployment offers, and the provider of each."""
    return json(checkout.offered(ctx.services))


@api.post(
    "/api/payments/{payment_id}/checkout", LOGGED_IN, body=ChooseMethod, response=CheckoutReply
)
async def open_checkout(ctx: Ctx) -> Response:
    """The payer chooses how to pay: the gateway opens the payment and gives the page to
    pay on (its redirect_url). The same method again answers the same page."""
    body = await ctx.body(ChooseMethod)
    return json(
        await checkout.checkout(ctx.services, ctx.user, ctx.path("payment_id"), body.method)
    )


@api.get("/api/admin/refunds", roles(Role.ADMIN), query=(LIMIT,), response=RefundsByHand)
async def refunds_by_hand(ctx: Ctx) -> Response:
    """Refunds the provider could not make (a bank transfer): an operator returns the
    money, then marks each refunded."""
    waiting = await payments.waiting_by_hand(ctx.services, ctx.query_int("limit"))
    return json(
        {
            "refunds": [
                {"payment": payment_json(p), "payer_id": p.payer_id, "since": rfc3339(p.updated_at)}
                for p in waiting
            ]
        }
    )


@api.post("/api/admin/payments/{payment_id}/refunded", roles(Role.ADMIN), response=PaymentReply)
async def mark_refunded(ctx: Ctx) -> Response:
    """The operator returned this payment's money by hand."""
    payment = await payments.refunded_by_hand(ctx.services, ctx.path("payment_id"))
    return json({"payment": payment_json(payment)})


@api.get("/api/shipments/{shipment_id}", LOGGED_IN, response=ShipmentReply)
async def get_shipment(ctx: Ctx) -> Response:
    """A box with its contents, address and history: for its buyer, its farmer, admins."""
    shipment_id = ctx.path("shipment_id")
    async with ctx.services.db.reader() as s:
        shipment = await s.get(Shipment, shipment_id)
    if shipment is None or not await delivery.roles_in(ctx.services, ctx.user, shipment):
        raise not_found("shipment", shipment_id)
    return json({"shipment": await delivery.read(ctx.services, shipment_id)})


@api.post(
    "/api/shipments/{shipment_id}/status", LOGGED_IN, body=MoveShipment, response=ShipmentReply
)
async def move_shipment(ctx: Ctx) -> Response:
    """Its farmer marks the box packed, shipped (courier, tracking number), delivered or
    failed (its orders are refunded); its buyer confirms receipt (completed)."""
    body = await ctx.body(MoveShipment)
    shipment = await delivery.move_shipment(ctx.services, ctx.user, ctx.path("shipment_id"), body)
    return json({"shipment": shipment})
