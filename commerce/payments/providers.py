"""Payment providers: the interface a gateway implements, and the sandbox."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol

import orjson

from commerce.payments.models import Payment
from core.errors import ApiError, bad_request, not_found
from core.ids import new_id
from core.services import Services

DEFAULT_PROVIDER = "sandbox"


SIGNATURE_HEADER = "panen-signature"


TOLERANCE_S = 300


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str
    type: str  # payment.succeeded | payment.failed
    payment_id: str
    amount: int
    currency: str


class PaymentProvider(Protocol):
    """What a gateway (Midtrans, Xendit, Alipay, Stripe…) implements to take payments."""

    name: str

    async def create_intent(self, payment_id: str, amount: int, currency: str) -> str:
        """Open a payment with the provider; returns the provider's reference."""
        ...

    def verify_webhook(self, headers: dict[str, str], body: bytes, now: float) -> WebhookEvent:
        """Check the signature and timestamp of a delivery; raise ApiError 401 if bad."""
        ...

    async def refund(self, payment_id: str, amount: int) -> None: ...


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

    async def create_intent(self, payment_id: str, amount: int, currency: str) -> str:
        return f"sbx_{payment_id}"

    async def refund(self, payment_id: str, amount: int) -> None:
        return None

    def webhook(
        self, payment: Payment, succeeded: bool, now: float
    ) -> tuple[dict[str, str], bytes]:
        body = orjson.dumps(
            {
                "id": new_id("evt"),
                "type": "payment.succeeded" if succeeded else "payment.failed",
                "created": int(now),
                "data": {
                    "payment_id": payment.id,
                    "amount": payment.amount,
                    "currency": payment.currency,
                },
            }
        )
        return {SIGNATURE_HEADER: sign(self.secret, int(now), body)}, body

    def verify_webhook(self, headers: dict[str, str], body: bytes, now: float) -> WebhookEvent:
        header = headers.get(SIGNATURE_HEADER, "")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        stamp, given = parts.get("t", ""), parts.get("v1", "")
        if not stamp.isdigit() or not given:
            raise _bad_signature(f"missing or malformed {SIGNATURE_HEADER} header")
        expected = sign(self.secret, int(stamp), body).split("v1=", 1)[1]
        if not hmac.compare_digest(expected, given):
            raise _bad_signature("the signature does not match")
        if abs(now - int(stamp)) > TOLERANCE_S:
            raise _bad_signature("the webhook timestamp is too old or in the future")
        try:
            raw = orjson.loads(body)
            data = raw["data"]
            event = WebhookEvent(
                id=str(raw["id"]),
                type=str(raw["type"]),
                payment_id=str(data["payment_id"]),
                amount=int(data["amount"]),
                currency=str(data["currency"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise bad_request("malformed_webhook", "the webhook body is not understood") from None
        if event.type not in ("payment.succeeded", "payment.failed"):
            raise bad_request("malformed_webhook", f"unknown event type {event.type!r}", "type")
        return event


_providers: dict[tuple[str, str], PaymentProvider] = {}


def provider_for(services: Services, name: str) -> PaymentProvider:
    key = (name, services.settings.secret_key)
    if key not in _providers:
        if name != "sandbox":
            raise not_found("payment provider", name)
        _providers[key] = SandboxProvider(services.settings.secret_key)
    return _providers[key]
