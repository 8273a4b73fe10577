"""Payout providers: how a farmer's money reaches their bank.

- `IrisProvider`: Midtrans Iris's disbursement API. A payout is created with the payout's
  id as `X-Idempotency-Key` (asking again after a crash gets the same `reference_no`, not a
  second transfer), then approved; Iris calls back (signed `Iris-Signature`, SHA-512 of the
  body and the merchant key) as it completes or fails, and can be asked.
- `BankFileProvider`: for a deployment without a disbursement API: the run's payouts are
  listed in a CSV an operator uploads to the bank, and the operator marks each one
  completed or failed.

Network calls never run inside a database transaction or a lock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from commerce.payouts.models import Payout
from core.errors import ApiError, bad_request
from core.fields import control_character_at
from core.settings import Settings

log = logging.getLogger("panen.payouts")

# Banks a farmer may be paid at (Iris's bank codes).
BANKS = frozenset(
    {"bca", "bni", "bri", "mandiri", "permata", "cimb", "danamon", "bsi", "btn", "bjb"}
)
TIMEOUT = httpx.Timeout(10.0, connect=3.0)


class PayoutRefused(Exception):
    """The provider will not make this transfer (a closed account, a bad number): the money
    goes back to the farmer's balance."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a provider says became of a transfer."""

    reference: str
    status: str  # completed | failed | submitted (still going)
    reason: str | None = None


class PayoutProvider(Protocol):
    name: str
    currencies: frozenset[str] | None  # None: any currency

    async def submit(self, payout: Payout) -> str:
        """Hand the transfer over; returns the provider's reference. Raises PayoutRefused
        for a transfer it will never make, anything else for one to try again."""
        ...

    async def outcome(self, payout: Payout) -> Outcome | None:
        """Where the transfer is now, if the provider can say (None: ask a person)."""
        ...


class BankFileProvider:
    """The run's payouts in a file for the bank; an operator reports each outcome."""

    name = "bank_file"
    currencies: frozenset[str] | None = None

    async def submit(self, payout: Payout) -> str:
        return f"file:{payout.run_id}"

    async def outcome(self, payout: Payout) -> Outcome | None:
        return None


class IrisProvider:
    name = "iris"
    currencies: frozenset[str] | None = frozenset({"IDR"})

    def __init__(self, settings: Settings) -> None:
        self.url = settings.midtrans_iris_url
        self.merchant_key = settings.iris_merchant_key
        self.creator = _basic(settings.iris_creator_key)
        self.approver = _basic(settings.iris_approver_key)
        self.http = httpx.AsyncClient(
            timeout=TIMEOUT,
            headers={"Accept": "application/json", "Content-Type": "application/json"},
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, auth: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": auth, **kw.pop("headers", {})}
        try:
            return await self.http.request(method, self.url + path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise ConnectionError(f"Iris unreachable: {type(exc).__name__}") from None

    async def submit(self, payout: Payout) -> str:
        body = {
            "payouts": [
                {
                    "beneficiary_name": payout.holder_name,
                    "beneficiary_account": payout.account_number,
                    "beneficiary_bank": payout.bank,
                    "amount": f"{payout.amount}.00",
                    "notes": f"Panen payout {payout.id}"[:100],
                }
            ]
        }
        r = await self._call(
            "POST",
            "/payouts",
            self.creator,
            content=orjson.dumps(body),
            headers={"X-Idempotency-Key": payout.id},
        )
        if r.status_code == 400:
            raise PayoutRefused(str(_json(r).get("errors") or _json(r).get("error_message")))
        items = _json(r).get("payouts") or []
        if r.status_code >= 300 or not items or not items[0].get("reference_no"):
            raise ConnectionError(f"Iris answered {r.status_code} to a new payout")
        reference = str(items[0]["reference_no"])
        approved = await self._call(
            "POST",
            "/payouts/approve",
            self.approver,
            content=orjson.dumps({"reference_nos": [reference], "otp": "335163"}),
        )
        if approved.status_code >= 300:
            raise ConnectionError(f"Iris answered {approved.status_code} to an approval")
        return reference

    async def outcome(self, payout: Payout) -> Outcome | None:
        if payout.provider_ref is None:
            return None
        r = await self._call("GET", f"/payouts/{payout.provider_ref}", self.creator)
        if r.status_code >= 300:
            raise ConnectionError(f"Iris answered {r.status_code} about a payout")
        return _outcome(_json(r))

    def callback(self, headers: dict[str, str], body: bytes) -> Outcome:
        """A signed callback from Iris: 401 if its signature does not check out."""
        given = headers.get("iris-signature", "")
        expected = hashlib.sha512(body + self.merchant_key.encode()).hexdigest()
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise ApiError(401, "bad_signature", "the callback's Iris-Signature does not match")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        ref = data.get("reference_no") if isinstance(data, dict) else None
        if not isinstance(ref, str) or not 0 < len(ref) <= 120:
            raise bad_request("malformed_webhook", "the callback is not understood")
        reason = data.get("error_message") if isinstance(data, dict) else None
        if control_character_at(ref) or (isinstance(reason, str) and "\x00" in reason):
            # Signed, but not what Iris sends (and PostgreSQL cannot store a NUL).
            raise bad_request("malformed_webhook", "the callback holds control characters")
        return _outcome(data)


def _outcome(data: dict[str, Any]) -> Outcome:
    status = str(data.get("status", ""))
    mapped = {"completed": "completed", "failed": "failed", "rejected": "failed"}.get(
        status, "submitted"
    )
    reason = data.get("error_message")
    return Outcome(str(data.get("reference_no", "")), mapped, str(reason) if reason else None)


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        data = r.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def make(settings: Settings) -> PayoutProvider:
    if settings.payout_provider == "iris":
        return IrisProvider(settings)
    return BankFileProvider()
