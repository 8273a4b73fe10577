"""JSON of payments: a payment as its payer sees it, and a provider's webhook answer."""

from __future__ import annotations

from typing import Literal

from commerce.payments.models import Payment
from core.shapes import NotRequired, TypedDict, closed


@closed
class PaymentOut(TypedDict):
    id: str
    provider: str
    status: str
    amount: int
    currency: str
    order_id: str | None


@closed
class WebhookAnswer(TypedDict):
    """What the provider hears back: each event id applies once."""

    status: Literal["applied", "duplicate", "ignored"]
    event_id: str
    payment_status: NotRequired[str]  # applied: the payment's status now
    reason: NotRequired[str]  # ignored: why


def payment_json(payment: Payment) -> PaymentOut:
    return {
        "id": payment.id,
        "provider": payment.provider,
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "order_id": payment.order_id,
    }
