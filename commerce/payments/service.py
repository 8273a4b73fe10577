"""Applying a provider's signed events to payments."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text

from commerce import hooks
from commerce.orders.models import Order, OrderStatusChange
from commerce.outbox import service as outbox
from commerce.payments.models import Payment
from commerce.payments.providers import provider_for
from core.clock import utcnow
from core.services import Services

SETTLE_JOB = "settle_orders"


async def call_for_settlement(services: Services) -> None:
    """Ask some worker to settle: a webhook that paid an order calls this, and so does a
    settler that finds a backlog, so that idle workers join in. Calls within a quarter
    second coalesce into one job."""
    await services.enqueue(SETTLE_JOB, job_id=f"{SETTLE_JOB}:{int(time.time() * 4)}")


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
