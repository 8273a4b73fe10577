"""Payment providers: the interface a gateway implements, and the sandbox.

A provider opens a payment (its intent), tells us what happened to it through a signed
webhook (verified here into a `ProviderEvent`), and returns money on request. Calls to a
provider are network calls: nothing calls one while holding a database transaction.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol

import orjson

from commerce.payments.models import Payment
from core.errors import ApiError, bad_request, not_found
from core.fields import control_character_at
from core.services import Services

DEFAULT_PROVIDER = "sandbox"
SIGNATURE_HEADER = "panen-signature"
TOLERANCE_S = 300
SUCCEEDED, FAILED = "payment.succeeded", "payment.failed"


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """What a provider says happened to one payment, once its signature checked out."""

    id: str  # the provider's event id: each applies once
    type: str  # payment.succeeded | payment.failed
    payment_id: str
    amount: int
    currency: str

    @property
    def succeeded(self) -> bool:
        return self.type == SUCCEEDED


class PaymentProvider(Protocol):
    """What a gateway (Midtrans, Xendit, Alipay, Stripe…) implements to take payments."""

    name: str

    async def create_intent(self, payment_id: str, amount: int, currency: str) -> str:
        """Open a payment with the provider; returns the provider's reference."""
        ...

    def verify_webhook(self, headers: dict[str, str], body: bytes, now: float) -> ProviderEvent:
        """Check the signature and timestamp of a delivery; raise ApiError 401 if bad."""
        ...

    async def refund(self, payment_id: str, amount: int, idempotency_key: str) -> None:
        """Return the payment's money to its payer; the same key twice refunds once."""
        ...


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
        self.refunded: dict[str, int] = {}  # idempotency key -> amount, as a gateway keeps

    async def create_intent(self, payment_id: str, amount: int, currency: str) -> str:
        return f"sbx_{payment_id}"

    async def refund(self, payment_id: str, amount: int, idempotency_key: str) -> None:
        self.refunded.setdefault(idempotency_key, amount)

    def webhook(
        self, payment: Payment, succeeded: bool, now: float
    ) -> tuple[dict[str, str], bytes]:
        body = orjson.dumps(
            {
                # One decision per payment: a second is a duplicate of the first.
                "id": f"evt_{payment.id}",
                "type": SUCCEEDED if succeeded else FAILED,
                "created": int(now),
                "data": {
                    "payment_id": payment.id,
                    "amount": payment.amount,
                    "currency": payment.currency,
                },
            }
        )
        return {SIGNATURE_HEADER: sign(self.secret, int(now), body)}, body

    def verify_webhook(self, headers: dict[str, str], body: bytes, now: float) -> ProviderEvent:
        header = headers.get(SIGNATURE_HEADER, "")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        stamp, given = parts.get("t", ""), parts.get("v1", "")
        # A Unix time has at most a dozen digits; anything longer is not one (and a
        # thousands-digit number would cost a conversion that Python refuses).
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or not given:
            raise _bad_signature(f"missing or malformed {SIGNATURE_HEADER} header")
        expected = sign(self.secret, int(stamp), body).split("v1=", 1)[1]
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise _bad_signature("the signature does not match")
        if abs(now - int(stamp)) > TOLERANCE_S:
            raise _bad_signature("the webhook timestamp is too old or in the future")
        try:
            raw = orjson.loads(body)
            data = raw["data"]
            event = ProviderEvent(
                id=str(raw["id"]),
                type=str(raw["type"]),
                payment_id=str(data["payment_id"]),
                amount=int(data["amount"]),
                currency=str(data["currency"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise bad_request("malformed_webhook", "the webhook body is not understood") from None
        if event.type not in (SUCCEEDED, FAILED):
            raise bad_request("malformed_webhook", f"unknown event type {event.type!r}", "type")
        if not (0 < len(event.id) <= 120 and 0 < len(event.payment_id) <= 40) or (
            control_character_at([event.id, event.payment_id, event.currency])
        ):
            raise bad_request("malformed_webhook", "the event or payment id is malformed")
        return event


_providers: dict[tuple[str, str], PaymentProvider] = {}


def provider_for(services: Services, name: str) -> PaymentProvider:
    """A provider this deployment offers, by name; 404 for any other (the sandbox exists
    only where development is chosen, or it is enabled on purpose)."""
    if name != "sandbox" or not services.settings.sandbox:
        raise not_found("payment provider", name)
    key = (name, services.settings.secret_key)
    if key not in _providers:
        _providers[key] = SandboxProvider(services.settings.secret_key)
    return _providers[key]


def checkout_provider(services: Services) -> PaymentProvider:
    """The provider new orders and gifts pay through; 503 while the deployment offers none."""
    try:
        return provider_for(services, DEFAULT_PROVIDER)
    except ApiError:
        raise ApiError(
            503,
            "payments_unavailable",
            "this deployment takes no payments yet",
            headers={"Retry-After": "3600"},
        ) from None
