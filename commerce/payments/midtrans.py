"""Midtrans: Snap for opening a payment, HTTP notifications confirmed with the status API,
and the refund API (docs.midtrans.com; the formats are those of Midtrans's own clients).

- Checkout opens a Snap transaction whose `order_id` is our payment's id, with only the
  method the payer chose enabled and the expiry of the order's reservation; Midtrans is
  told to notify our webhook (`X-Override-Notification`).
- A notification is trusted only if its `signature_key` (SHA-512 of order_id, status_code,
  gross_amount and the server key, as the strings it carries) checks out, and then only
  as far as the status API agrees: what we apply is what the status API says, and a
  notification claiming a payment the status API does not show is refused.
- A refund goes through the refund API keyed by `refund_key`, so asking twice refunds
  once; a bank transfer cannot be refunded through it (an operator returns it by hand).

httpx, not Midtrans's Python client: that client is synchronous (requests, no timeouts),
which would block the event loop, and it has no Iris; the API is a handful of JSON calls.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from commerce.payments.models import Payment
from commerce.payments.providers import (
    FAILED,
    PENDING,
    SUCCEEDED,
    Checkout,
    Payer,
    ProviderEvent,
    Refund,
    gateway_unavailable,
)
from core.clock import utcnow
from core.errors import ApiError, bad_request
from core.fields import control_character_at
from core.settings import Settings

log = logging.getLogger("panen.payments.midtrans")

# Our method names, and Snap's `enabled_payments` value for each.
METHODS = {
    "qris": "other_qris",
    "gopay": "gopay",
    "shopeepay": "shopeepay",
    "bca_va": "bca_va",
    "bni_va": "bni_va",
    "bri_va": "bri_va",
    "permata_va": "permata_va",
    "mandiri_bill": "echannel",
}
# Payment types (as notifications name them) the refund API can return money for; a bank
# transfer (bank_transfer, echannel) cannot be refunded through it.
REFUNDABLE = frozenset({"qris", "gopay", "shopeepay", "credit_card"})
PAYMENT_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
JAKARTA = timezone(timedelta(hours=7))  # Snap's expiry start_time is in +0700
TIMEOUT = httpx.Timeout(10.0, connect=3.0)


def signature(order_id: str, status_code: str, gross_amount: str, server_key: str) -> str:
    """A notification's `signature_key`: SHA-512 of the four strings, concatenated."""
    return hashlib.sha512((order_id + status_code + gross_amount + server_key).encode()).hexdigest()


def kind(transaction_status: str, fraud_status: str | None) -> str:
    """What a transaction status means for a payment: paid, failed, or not yet decided
    (pending, a card under review, a refund, which we record when we ask for it)."""
    if transaction_status in ("settlement", "capture"):
        return SUCCEEDED if fraud_status in (None, "", "accept") else PENDING
    if transaction_status in ("deny", "cancel", "expire", "failure"):
        return FAILED
    return PENDING


def amount_of(gross_amount: str) -> int:
    """`"150000.00"` -> 150000; a fraction of a rupiah is not an amount we take."""
    try:
        value = Decimal(gross_amount)
    except InvalidOperation:
        raise bad_request("malformed_webhook", "gross_amount is not a number") from None
    if value != value.to_integral_value() or not 0 < value < 10**15:
        raise bad_request("malformed_webhook", "gross_amount is not a whole amount")
    return int(value)


class MidtransProvider:
    name = "midtrans"
    methods = tuple(METHODS)

    def __init__(self, settings: Settings) -> None:
        self.server_key = settings.midtrans_server_key
        self.snap_url = settings.midtrans_snap_url
        self.api_url = settings.midtrans_api_url
        self.notify_url = settings.public_url + "/api/payments/webhook/midtrans"
        auth = base64.b64encode(f"{self.server_key}:".encode()).decode()
        self.http = httpx.AsyncClient(
            timeout=TIMEOUT,
            headers={
                "Authorization": f"Basic {auth}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            return await self.http.request(method, url, **kw)
        except httpx.HTTPError as exc:
            log.warning("Midtrans unreachable: %s %s: %s", method, url, type(exc).__name__)
            raise gateway_unavailable(type(exc).__name__) from None

    # --- Opening a payment ----------------------------------------------------------------

    async def checkout(
        self, payment: Payment, method: str, expires_at: datetime, payer: Payer
    ) -> Checkout:
        if payment.currency != "IDR":
            raise bad_request(
                "currency_not_supported", "Midtrans takes payments in rupiah only", "method"
            )
        now = utcnow()
        minutes = max(1, math.ceil((expires_at - now).total_seconds() / 60))
        body = {
            "transaction_details": {"order_id": payment.id, "gross_amount": payment.amount},
            "item_details": [
                {
                    "id": payment.order_id or payment.id,
                    "price": payment.amount,
                    "quantity": 1,
                    "name": payer.item[:50],
                }
            ],
            "customer_details": {"first_name": payer.name[:50]},
            "enabled_payments": [METHODS[method]],
            "expiry": {
                "start_time": now.astimezone(JAKARTA).strftime("%Y-%m-%d %H:%M:%S +0700"),
                "unit": "minute",
                "duration": minutes,
            },
            "callbacks": {"finish": payer.return_url},
        }
        r = await self._call(
            "POST",
            f"{self.snap_url}/transactions",
            content=orjson.dumps(body),
            headers={"X-Override-Notification": self.notify_url},
        )
        if r.status_code == 201:
            data = _json(r)
            if isinstance(data.get("token"), str) and isinstance(data.get("redirect_url"), str):
                return Checkout(
                    method, data["redirect_url"], data["token"], now + timedelta(minutes=minutes)
                )
        messages = " ".join(str(m) for m in _json(r).get("error_messages") or [])
        if r.status_code in (400, 409) and "order_id" in messages:
            # Snap already has a transaction for this payment whose page we lost (a crash
            # between its answer and our write): it cannot be opened again.
            raise ApiError(
                409,
                "checkout_unavailable",
                "this payment's checkout cannot be opened again; cancel and order anew",
            )
        log.error("Snap refused a transaction: %s %s", r.status_code, messages[:300])
        raise gateway_unavailable(f"Snap answered {r.status_code}")

    # --- Notifications --------------------------------------------------------------------

    async def verify(self, headers: dict[str, str], body: bytes, now: float) -> ProviderEvent:
        try:
            note = orjson.loads(body)
            fields = {
                k: note[k] for k in ("order_id", "status_code", "gross_amount", "signature_key")
            }
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise bad_request("malformed_webhook", "the notification is not understood") from None
        if not all(isinstance(v, str) and 0 < len(v) <= 200 for v in fields.values()) or (
            control_character_at(fields)
        ):
            raise bad_request("malformed_webhook", "the notification's fields are malformed")
        if not PAYMENT_ID.fullmatch(fields["order_id"]):
            # Our payment ids are Midtrans's order ids: anything else is not ours to ask about.
            raise bad_request("malformed_webhook", "order_id is not a payment id")
        expected = signature(
            fields["order_id"], fields["status_code"], fields["gross_amount"], self.server_key
        )
        if not hmac.compare_digest(expected.encode(), fields["signature_key"].encode()):
            raise ApiError(401, "bad_signature", "the notification's signature_key does not match")
        claimed = kind(str(note.get("transaction_status", "")), note.get("fraud_status"))
        # The status API is the truth; the notification only tells us when to ask.
        truth = await self.status(fields["order_id"])
        if truth is None:
            raise ApiError(
                400,
                "notification_contradicted",
                "Midtrans's status API does not know this transaction",
            )
        actual = kind(str(truth.get("transaction_status", "")), truth.get("fraud_status"))
        if claimed == SUCCEEDED and actual != SUCCEEDED:
            raise ApiError(
                400,
                "notification_contradicted",
                f"the status API says {truth.get('transaction_status')!r}, not paid",
            )
        transaction_id = str(truth.get("transaction_id") or fields["order_id"])
        status = str(truth.get("transaction_status"))
        return ProviderEvent(
            id=f"{transaction_id}:{status}"[:120],
            type=actual,
            payment_id=fields["order_id"],
            amount=amount_of(str(truth.get("gross_amount", fields["gross_amount"]))),
            currency=str(truth.get("currency") or "IDR"),
            method=str(truth.get("payment_type") or "")[:32] or None,
        )

    async def status(self, order_id: str) -> dict[str, Any] | None:
        """The transaction as Midtrans has it now; None if it has none by that id."""
        r = await self._call("GET", f"{self.api_url}/v2/{quote(order_id, safe='')}/status")
        data = _json(r)
        code = str(data.get("status_code", r.status_code))
        if r.status_code == 404 or code == "404":
            return None
        if r.status_code >= 400 or not data.get("transaction_status"):
            raise gateway_unavailable(f"status API answered {r.status_code}/{code}")
        return data

    # --- Returning money ------------------------------------------------------------------

    async def refund(self, payment: Payment, idempotency_key: str) -> Refund:
        if payment.method not in REFUNDABLE:
            return Refund.BY_HAND
        key = "".join(c if c.isalnum() or c in "-_" else "-" for c in idempotency_key)
        r = await self._call(
            "POST",
            f"{self.api_url}/v2/{payment.id}/refund",
            content=orjson.dumps(
                {"refund_key": key, "amount": payment.amount, "reason": "returned by Panen"}
            ),
        )
        data = _json(r)
        code = str(data.get("status_code", r.status_code))
        if r.status_code < 400 and code in ("200", "201"):
            return Refund.DONE
        # Asked before and already returned (a retry after our record was lost): done.
        truth = await self.status(payment.id)
        if truth is not None and truth.get("transaction_status") == "refund":
            return Refund.DONE
        raise gateway_unavailable(f"refund API answered {r.status_code}/{code}")


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        data = r.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
