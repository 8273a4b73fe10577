"""Payments: opening one, recognising a provider's event once, and returning money.

The webhook's flow (which order or gift a payment is for, and what follows from it) is
`panen.flows.payment`; here is what concerns the payment itself. Returning money is two
steps: inside the caller's transaction the payment becomes `refunding`; after it commits,
`execute_refunds` asks the provider (a network call, outside any transaction) and marks it
`refunded`. A crash between the two leaves it `refunding`, and `tasks.refund_sweep` picks
it up: the provider's refund is keyed by the payment, so asking twice returns it once.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.ledger import service as ledger
from commerce.payments import lifecycle
from commerce.payments.lifecycle import PaymentStatus
from commerce.payments.models import Payment
from commerce.payments.providers import ProviderEvent, Refund, provider_for
from core.clock import utcnow
from core.errors import conflict, not_found
from core.services import Services

log = logging.getLogger("panen.payments")


def add(
    s: AsyncSession,
    *,
    payment_id: str,
    purpose: str,
    payer_id: str,
    provider: str,
    provider_ref: str | None,
    amount: int,
    currency: str,
    order_id: str | None = None,
) -> Payment:
    """A new pending payment (an order's are written with the order, by its writer)."""
    payment = Payment(
        id=payment_id,
        purpose=purpose,
        order_id=order_id,
        payer_id=payer_id,
        provider=provider,
        provider_ref=provider_ref,
        status=PaymentStatus.PENDING,
        amount=amount,
        currency=currency,
    )
    s.add(payment)
    return payment


async def record_event(s: AsyncSession, provider: str, event: ProviderEvent) -> bool:
    """Remember a provider's event id in the transaction of the change it causes; False
    when it was seen before (a replay, or a second delivery): then it changes nothing."""
    fresh = await s.scalar(
        text(
            "INSERT INTO webhook_events (provider, event_id, payment_id) VALUES (:p, :e, :pay)"
            " ON CONFLICT DO NOTHING RETURNING event_id"
        ),
        {"p": provider, "e": event.id, "pay": event.payment_id},
    )
    return fresh is not None


async def find(s: AsyncSession, payment_id: str) -> Payment | None:
    """A payment as it is now, without a lock (to learn which order or gift it is for)."""
    return await s.get(Payment, payment_id)


async def lock(s: AsyncSession, payment_id: str) -> Payment | None:
    """The payment, row-locked: after its order's or gift's lock (docs/architecture.md)."""
    return await s.get(Payment, payment_id, with_for_update=True, populate_existing=True)


async def lock_of_order(s: AsyncSession, order_id: str) -> Payment | None:
    return await s.scalar(
        select(Payment)
        .where(Payment.order_id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _late_reference(payment_id: str) -> str:
    return f"late_payment:{payment_id}"


async def refund(s: AsyncSession, payment: Payment, at: datetime) -> None:
    """The payment's money goes back to its payer: `refunding` now, the provider is asked
    once this transaction commits (`execute_refunds`)."""
    if payment.status in (PaymentStatus.FAILED, PaymentStatus.CANCELLED, PaymentStatus.PENDING):
        # Money arrived for something that could no longer take it: the ledger shows it
        # came in and is owed back, until the provider has returned it.
        await ledger.post(
            s,
            "late_payment",
            _late_reference(payment.id),
            payment.currency,
            [
                ledger.Entry(ledger.buyer_clearing(payment.provider), -payment.amount),
                ledger.Entry(ledger.refunds_due(payment.provider), payment.amount),
            ],
            order_id=payment.order_id,
        )
    lifecycle.move(payment, PaymentStatus.REFUNDING, at)


async def execute_refunds(services: Services, payment_ids: list[str]) -> int:
    """Ask the providers to return these payments' money (each still `refunding`), then
    mark them `refunded`. Never inside a transaction; safe to repeat. Returns how many."""
    done = 0
    for payment_id in payment_ids:
        async with services.db.reader() as s:
            payment = await find(s, payment_id)
        if payment is None or payment.status != PaymentStatus.REFUNDING:
            continue
        try:
            provider = provider_for(services, payment.provider)
            outcome = await provider.refund(payment, f"refund:{payment.id}")
        except Exception:  # the sweeper asks again
            log.warning("refund of %s failed; will retry", payment.id, exc_info=True)
            continue
        if outcome is Refund.BY_HAND:
            # The provider cannot return it: an operator does (GET /api/admin/refunds),
            # and marks it refunded; until then the sweeper leaves it be.
            await services.db.run(functools.partial(_by_hand, payment_id=payment.id))
            log.warning("refund of %s must be made by hand (%s)", payment.id, payment.method)
            continue
        if await services.db.run(functools.partial(_refunded, payment_id=payment.id)):
            done += 1
    return done


async def _by_hand(s: AsyncSession, payment_id: str) -> None:
    payment = await lock(s, payment_id)
    if payment is not None and payment.status == PaymentStatus.REFUNDING:
        payment.refund_by_hand = True


async def refunded_by_hand(services: Services, payment_id: str) -> Payment:
    """An operator returned the money outside the provider: the payment is `refunded` (and
    a late payment's return is posted); 409 unless it is waiting for exactly that."""

    async def mark(s: AsyncSession) -> Payment:
        payment = await lock(s, payment_id)
        if payment is None:
            raise not_found("payment", payment_id)
        if not (payment.status == PaymentStatus.REFUNDING and payment.refund_by_hand):
            raise conflict(
                "not_refunding_by_hand",
                "this payment is not waiting for a refund by hand",
                status=payment.status,
            )
        await _refunded(s, payment_id)
        return payment

    return await services.db.run(mark)


async def waiting_by_hand(services: Services, limit: int = 200) -> list[Payment]:
    """Refunds an operator must make (the provider could not), oldest first."""
    async with services.db.reader() as s:
        rows = await s.scalars(
            select(Payment)
            .where(Payment.status == PaymentStatus.REFUNDING, Payment.refund_by_hand)
            .order_by(Payment.updated_at)
            .limit(limit)
        )
        return list(rows)


async def _refunded(s: AsyncSession, payment_id: str) -> bool:
    payment = await lock(s, payment_id)
    if payment is None or payment.status != PaymentStatus.REFUNDING:
        return False
    late = await s.scalar(
        text("SELECT 1 FROM ledger_transactions WHERE reference = :r"),
        {"r": _late_reference(payment.id)},
    )
    if late:
        await ledger.post(
            s,
            "late_payment_returned",
            f"late_payment_returned:{payment.id}",
            payment.currency,
            [
                ledger.Entry(ledger.refunds_due(payment.provider), -payment.amount),
                ledger.Entry(ledger.buyer_clearing(payment.provider), payment.amount),
            ],
            order_id=payment.order_id,
        )
    lifecycle.move(payment, PaymentStatus.REFUNDED, utcnow())
    return True


async def stuck_refunds(services: Services, older_than_s: float, limit: int = 100) -> list[str]:
    """Payments left `refunding` (their process died before asking the provider)."""
    before = utcnow() - timedelta(seconds=older_than_s)
    async with services.db.reader() as s:
        rows = await s.scalars(
            select(Payment.id)
            .where(
                Payment.status == PaymentStatus.REFUNDING,
                Payment.updated_at < before,
                Payment.refund_by_hand.is_(False),
            )
            .order_by(Payment.updated_at)
            .limit(limit)
        )
        return list(rows)
