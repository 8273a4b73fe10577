"""Payment providers: the interface a gateway implements, the sandbox, and which providers
this deployment offers.

A provider opens a payment when its payer chooses how to pay (`checkout`: a gateway's page
or code to pay at), tells us what happened to it through a signed notification (`verify`
checks it into a `ProviderEvent`, asking the gateway itself where it says to), and returns
money on request. Calls to a provider are network calls: nothing calls one while holding a
database transaction or a row lock.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import orjson

from commerce.payments.models import Payment
from core.errors import ApiError, bad_request, not_found
from core.fields import control_character_at
from core.services import Services

SIGNATURE_HEADER = "panen-signature"
TOLERANCE_S = 300
SUCCEEDED, FAILED, PENDING = "payment.succeeded", "payment.failed", "payment.pending"


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """What a provider says happened to one payment, once its signature checked out."""

    id: str  # the provider's event id: each applies once
    type: str  # payment.succeeded | payment.failed | payment.pending (nothing to do yet)
    payment_id: str
    amount: int
    currency: str
    method: str | None = None  # how it was paid, in the provider's words (qris, gopay …)

    @property
    def succeeded(self) -> bool:
        return self.type == SUCCEEDED


@dataclass(frozen=True, slots=True)
class Payer:
    """What a gateway's page shows the payer, and where it sends them back."""

    name: str
    item: str  # what is being paid for
    return_url: str


@dataclass(frozen=True, slots=True)
class Checkout:
    """Where the payer pays: a gateway's page (or none, for the sandbox)."""

    method: str
    redirect_url: str | None
    token: str | None
    expires_at: datetime


class Refund(StrEnum):
    DONE = "done"  # the provider returned the money
    BY_HAND = "by_hand"  # it cannot (a bank transfer): an operator returns it, then says so


class PaymentProvider(Protocol):
    """What a gateway (Midtrans, Xendit, Alipay, Stripe…) implements to take payments."""

    name: str
    methods: tuple[str, ...]  # what a payer may choose (qris, bca_va, gopay …)

    async def checkout(
        self, payment: Payment, method: str, expires_at: datetime, payer: Payer
    ) -> Checkout:
        """Open the payment with the provider for this method; 503 if it cannot be reached."""
        ...

    async def verify(self, headers: dict[str, str], body: bytes, now: float) -> ProviderEvent:
        """Check a notification (401 `bad_signature`, 400 `malformed_webhook`; 503 while a
        gateway that must confirm it cannot be reached)."""
        ...

    async def refund(self, payment: Payment, idempotency_key: str) -> Refund:
        """Return the payment's money to its payer; the same key twice refunds once."""
        ...


def gateway_unavailable(what: str) -> ApiError:
    """The gateway cannot be reached or failed: nothing changed here; retry."""
    return ApiError(
        503,
        "unavailable",
        f"the payment gateway is unavailable ({what}); retry",
        headers={"Retry-After": "5"},
    )


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _bad_signature(message: str) -> ApiError:
    return ApiError(401, "bad_signature", message)


class SandboxProvider:
    """Approves or declines on request, and signs its webhooks like a real gateway."""

    name = "sandbox"
    methods: tuple[str, ...] = ("sandbox",)

    def __init__(self, secret_key: str) -> None:
        self.secret = hmac.new(secret_key.encode(), b"sandbox-webhook", hashlib.sha256).digest()
        self.refunded: dict[str, int] = {}  # idempotency key -> amount, as a gateway keeps

    async def checkout(
        self, payment: Payment, method: str, expires_at: datetime, payer: Payer
    ) -> Checkout:
        # Nothing to open: the payer approves or declines on our own page.
        return Checkout(method, None, None, expires_at)

    async def refund(self, payment: Payment, idempotency_key: str) -> Refund:
        self.refunded.setdefault(idempotency_key, payment.amount)
        return Refund.DONE

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

    async def verify(self, headers: dict[str, str], body: bytes, now: float) -> ProviderEvent:
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


def _make(services: Services, name: str) -> PaymentProvider:
    if name == "sandbox":
        return SandboxProvider(services.settings.secret_key)
    from commerce.payments.midtrans import MidtransProvider  # only where it is offered

    return MidtransProvider(services.settings)


def provider_for(services: Services, name: str) -> PaymentProvider:
    """A provider this deployment offers, by name; 404 for any other (the sandbox exists
    only where development is chosen, or it is enabled on purpose)."""
    if name not in services.settings.payment_providers:
        raise not_found("payment provider", name)
    return services.shared(f"payments.provider.{name}", lambda: _make(services, name))


def checkout_provider(services: Services) -> PaymentProvider:
    """The provider new orders and gifts pay through until their payer chooses a method
    (the first this deployment offers); 503 while it offers none."""
    offered = services.settings.payment_providers
    if not offered:
        raise ApiError(
            503,
            "payments_unavailable",
            "this deployment takes no payments yet",
            headers={"Retry-After": "3600"},
        )
    return provider_for(services, offered[0])


def methods(services: Services) -> dict[str, str]:
    """Every way to pay this deployment offers: method -> its provider (the first offering
    it, in the deployment's order)."""
    out: dict[str, str] = {}
    for name in services.settings.payment_providers:
        for method in provider_for(services, name).methods:
            out.setdefault(method, name)
    return out
