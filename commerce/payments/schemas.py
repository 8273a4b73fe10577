"""Request bodies and JSON of payments: a payment as its payer sees it, its checkout, and
a provider's webhook answer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

from commerce.payments.models import Payment
from core.clock import rfc3339
from core.http import Body
from core.shapes import NotRequired, TypedDict, closed


class ChooseMethod(Body):
    method: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z_]+$")]


@closed
class PaymentOut(TypedDict):
    id: str
    provider: str
    status: str
    amount: int
    currency: str
    order_id: str | None
    method: str | None


@closed
class PaymentReply(TypedDict):
    payment: PaymentOut


@closed
class CheckoutOut(TypedDict):
    """Where the payer pays: the gateway's page (none for the sandbox, whose payer approves
    on our own page), open until `expires_at`."""

    provider: str
    method: str
    redirect_url: str | None
    token: str | None
    expires_at: str | None


@closed
class CheckoutReply(TypedDict):
    payment_id: str
    status: str
    checkout: CheckoutOut


@closed
class MethodOut(TypedDict):
    method: str
    provider: str


@closed
class MethodList(TypedDict):
    methods: list[MethodOut]


@closed
class RefundByHand(TypedDict):
    payment: PaymentOut
    payer_id: str
    since: str | None


@closed
class RefundsByHand(TypedDict):
    refunds: list[RefundByHand]


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
        "method": payment.method,
    }


def checkout_json(payment: Payment) -> CheckoutOut:
    assert payment.method is not None
    return {
        "provider": payment.provider,
        "method": payment.method,
        "redirect_url": payment.checkout_url,
        "token": payment.checkout_token,
        "expires_at": rfc3339(payment.checkout_expires_at),
    }
