"""TEMP"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce import hooks
from commerce.ledger import service as ledger
from commerce.orders.models import Order, OrderStatusChange
from commerce.orders.service import host_of, load_order
from commerce.outbox import service as outbox
from commerce.payments.models import Payment
from commerce.payments.providers import DEFAULT_PROVIDER, provider_for
from core.auth import Principal
from core.clock import rfc3339, utcnow
from core.errors import conflict, forbidden, not_found
from core.services import Services


async def cancel_order(services: Services, principal: Principal, order_id: str) -> dict[str, Any]:
    """Buyer: before payment. Host or admin: any time; a paid or settled order is refunded
    and a settled one gets reversing ledger postings. Stock returns either way."""
    async with services.db.transaction() as s:
        order = await s.get(Order, order_id, with_for_update=True)
        if order is None:
            raise not_found("order", order_id)
        host_id = await host_of(services, order.session_id)
        is_buyer = order.buyer_id == principal.user_id
        is_staff = principal.is_admin or principal.user_id == host_id
        if not (is_buyer or is_staff):
            raise forbidden("only its buyer, its host or an admin may cancel this order")
        if order.status in ("expired", "cancelled", "refunded"):
            return await _reload(s, order_id)  # cancelling twice is harmless
        if order.status != "reserved" and not is_staff:
            raise conflict(
                "already_paid",
                "a paid order can only be refunded by the host or an admin",
                status=order.status,
            )
        payment = await s.scalar(
            select(Payment).where(Payment.order_id == order_id).with_for_update()
        )
        now = utcnow()
        events: list[tuple[str, dict[str, Any]]] = [
            outbox.release_row(order.session_id, order.inventory_id, order.listing_id, order.id)
        ]
        if order.status == "reserved":
            new_status, note = "cancelled", f"cancelled by {principal.user_id}"
            if payment is not None and payment.status == "pending":
                payment.status, payment.updated_at = "cancelled", now
        else:
            new_status, note = "refunded", f"refunded by {principal.user_id}"
            if order.status == "settled":
                await ledger.post(
                    s,
                    "refund",
                    f"refund:{order.id}",
                    order.currency,
                    ledger.reversed_entries(sale_entries(order, payment)),
                    order_id=order.id,
                )
                if order.pledge_amount > 0:  # the charity's side, and the log, reverse too
                    events += await hooks.pledges_moved(
                        s,
                        [
                            hooks.PledgeMovement(
                                "pledge_reversal",
                                order.id,
                                order.session_id,
                                order.charity_id,
                                order.buyer_id,
                                order.pledge_amount,
                                order.currency,
                                now,
                            )
                        ],
                    )
                # What the purchase earned (energy points) is taken back here too.
                events += await hooks.orders_moved(
                    s,
                    [
                        hooks.OrderMovement(
                            "refunded",
                            order.id,
                            order.session_id,
                            order.buyer_id,
                            order.total,
                            order.currency,
                            now,
                        )
                    ],
                )
            if payment is not None:
                await provider_for(services, payment.provider).refund(payment.id, payment.amount)
                payment.status, payment.updated_at = "refunded", now
            refund = sale_event("refund", order, rfc3339(now))
            events += [
                (f"session:{order.session_id}", refund),
                (f"farmer:{order.farmer_id}", refund),
                (f"me:{order.buyer_id}", refund),
            ]
        order.status, order.closed_at = new_status, now
        s.add(OrderStatusChange(order_id=order.id, status=new_status, note=note))
        await outbox.add(s, events)
        await s.flush()
        out = await _reload(s, order_id)
    await outbox.relay(services)
    return out


async def _reload(s: AsyncSession, order_id: str) -> dict[str, Any]:
    found = await load_order(s, order_id)
    assert found is not None
    return found


def sale_event(kind: str, order: Order, at: str | None) -> dict[str, Any]:
    """An `order_paid` or `refund` event: rooms and farmers fold one as the other's
    opposite, so both have this one shape."""
    return {
        "type": kind,
        "order_id": order.id,
        "session_id": order.session_id,
        "listing_id": order.listing_id,
        "quantity": order.quantity,
        "gross": order.total,
        "pledge": order.pledge_amount,
        "currency": order.currency,
        "at": at,
    }


def sale_entries(order: Order, payment: Payment | None) -> list[ledger.Entry]:
    provider = payment.provider if payment is not None else DEFAULT_PROVIDER
    return [
        ledger.Entry(ledger.buyer_clearing(provider), -order.total),
        ledger.Entry(ledger.charity_payable(order.charity_id), order.pledge_amount),
        ledger.Entry(ledger.farmer_payable(order.farmer_id), order.farmer_amount),
        ledger.Entry(ledger.PLATFORM_FEE, order.fee_amount),
    ]
