"""Checkout: the payer chooses how to pay, and the gateway opens the payment for it.

An order or a gift is recorded with a pending payment and no network call (a flash sale's
hot path never waits on a gateway). When the payer picks a method (QRIS, a bank's virtual
account, an e-wallet), this flow:

1. checks the payment is theirs and still payable (an order's reservation still holds);
2. claims the payment for that method in one short transaction (two taps at once: one
   opens it, the other gets its answer), switching to the provider that offers it;
3. asks the provider to open it — a network call, outside any transaction or lock;
4. records the gateway's page and its expiry.

If the gateway cannot be reached, the claim is let go and the payer hears 503 with
Retry-After: the order keeps its reservation until it expires, nothing is lost.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.orders.lifecycle import OrderStatus
from commerce.orders.models import Order
from commerce.payments import service as payments
from commerce.payments.lifecycle import PaymentStatus
from commerce.payments.models import Payment
from commerce.payments.providers import Payer, methods, provider_for
from commerce.payments.schemas import CheckoutReply, MethodList, checkout_json
from core.auth import Principal
from core.clock import utcnow
from core.errors import ApiError, bad_request, conflict, not_found
from core.models import User
from core.services import Services
from donations.gifts.models import Donation

# A gift or a top-up holds nothing, but its gateway page should not stay open for days.
GIFT_CHECKOUT_S = 3600
# How long a second tap waits for the first to open the payment.
WAIT_FOR_FIRST_S = 5.0


def offered(services: Services) -> MethodList:
    return {"methods": [{"method": m, "provider": p} for m, p in methods(services).items()]}


async def checkout(
    services: Services, principal: Principal, payment_id: str, method: str
) -> CheckoutReply:
    provider_name = methods(services).get(method)
    if provider_name is None:
        raise bad_request("invalid_field", f"this deployment offers no method {method!r}", "method")
    # 1. Theirs, and payable.
    async with services.db.reader() as s:
        payment = await payments.find(s, payment_id)
        if payment is None or not (payment.payer_id == principal.user_id or principal.is_admin):
            raise not_found("payment", payment_id)
        expires_at, payer = await _payable(services, s, payment)
    if payment.status != PaymentStatus.PENDING:
        raise conflict(
            "payment_not_pending", f"this payment is {payment.status}", status=payment.status
        )
    # 2. Claim it for this method (and its provider), keeping which it had.
    had = payment.provider
    for _ in range(3):
        if await services.db.run(lambda s: _claim(s, payment_id, method, provider_name)):
            break
        found = await _opened_by_another(services, payment_id, method)
        if found is not None:
            return found
    else:
        raise ApiError(
            409,
            "checkout_in_progress",
            "this payment is being opened; retry in a moment",
            headers={"Retry-After": "1"},
        )
    # 3. The gateway opens it, outside any transaction.
    async with services.db.reader() as s:
        payment = await payments.find(s, payment_id)
    assert payment is not None
    try:
        opened = await provider_for(services, provider_name).checkout(
            payment, method, expires_at, payer
        )
    except BaseException:
        await services.db.run(lambda s: _let_go(s, payment_id, had))
        raise
    # 4. Where to pay, until when.
    await services.db.run(
        lambda s: _record(s, payment_id, opened.redirect_url, opened.token, opened.expires_at)
    )
    async with services.db.reader() as s:
        payment = await payments.find(s, payment_id)
    assert payment is not None
    return {"payment_id": payment.id, "status": payment.status, "checkout": checkout_json(payment)}


async def _payable(services: Services, s: AsyncSession, payment: Payment) -> tuple[datetime, Payer]:
    """Until when the payment may be made, and what the gateway shows; 409 when what it
    pays for can no longer take it."""
    user = await s.get(User, payment.payer_id)
    name = user.display_name if user else "Panen"
    base = services.settings.public_url
    if payment.order_id is not None:
        order = await s.get(Order, payment.order_id)
        assert order is not None
        if order.status != OrderStatus.RESERVED or order.expires_at <= utcnow():
            raise conflict("order_not_payable", f"the order is {order.status}", status=order.status)
        return order.expires_at, Payer(
            name, f"Panen order {order.id}", f"{base}/sessions/{order.session_id}?order={order.id}"
        )
    if payment.purpose == "top_up":
        return utcnow() + timedelta(seconds=GIFT_CHECKOUT_S), Payer(
            name, "Panen sponsor top-up", f"{base}/"
        )
    gift = await s.scalar(select(Donation).where(Donation.payment_id == payment.id))
    where = f"/sessions/{gift.session_id}" if gift and gift.session_id else "/"
    return utcnow() + timedelta(seconds=GIFT_CHECKOUT_S), Payer(
        name, "Panen donation", f"{base}{where}"
    )


async def _claim(s: AsyncSession, payment_id: str, method: str, provider: str) -> bool:
    claimed = await s.scalar(
        text(
            "UPDATE payments SET method = :m, provider = :p, updated_at = now()"
            " WHERE id = :id AND status = 'pending' AND method IS NULL RETURNING id"
        ),
        {"m": method, "p": provider, "id": payment_id},
    )
    return claimed is not None


async def _let_go(s: AsyncSession, payment_id: str, provider: str) -> None:
    """The gateway did not open it: the payment is as it was, to be paid another way."""
    await s.execute(
        text(
            "UPDATE payments SET method = NULL, provider = :p, updated_at = now()"
            " WHERE id = :id AND status = 'pending' AND checkout_expires_at IS NULL"
        ),
        {"id": payment_id, "p": provider},
    )


async def _record(
    s: AsyncSession, payment_id: str, url: str | None, token: str | None, until: datetime
) -> None:
    await s.execute(
        text(
            "UPDATE payments SET checkout_url = :u, checkout_token = :t,"
            " checkout_expires_at = :x, updated_at = now() WHERE id = :id"
        ),
        {"u": url, "t": token, "x": until, "id": payment_id},
    )


async def _opened_by_another(
    services: Services, payment_id: str, method: str
) -> CheckoutReply | None:
    """Another request claimed this payment: its checkout is ours if it is for the same
    method (once it is open); another method is 409; None if it let go (its gateway
    failed), so this one may try."""
    waited = 0.0
    while True:
        async with services.db.reader() as s:
            payment = await payments.find(s, payment_id)
        assert payment is not None
        if payment.status != PaymentStatus.PENDING:
            raise conflict(
                "payment_not_pending", f"this payment is {payment.status}", status=payment.status
            )
        if payment.method is None:
            return None
        if payment.method != method:
            raise conflict(
                "checkout_exists",
                f"this payment is already open for {payment.method}",
                method=payment.method,
            )
        if payment.checkout_expires_at is not None:
            return {
                "payment_id": payment.id,
                "status": payment.status,
                "checkout": checkout_json(payment),
            }
        if waited >= WAIT_FOR_FIRST_S:
            raise ApiError(
                409,
                "checkout_in_progress",
                "this payment is being opened; retry in a moment",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(0.1)
        waited += 0.1
