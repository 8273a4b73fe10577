"""A local Midtrans (Snap, the Core API's status/refund/cancel/expire, Iris payouts), written
from Midtrans's documented requests, responses and notifications, for the tests and the
demo: nothing here imports Panen's own Midtrans code, so it checks that code from outside.

What it does like Midtrans:
- Basic auth with the server key (Snap, Core) or the Iris creator/approver key; 401 else.
- Snap: `POST /snap/v1/transactions` -> 201 `{token, redirect_url}`; a used order_id is
  400 `error_messages`; gross_amount must equal the sum of item_details.
- The payer's page (`redirect_url`) lets a person choose and pay (the demo); tests drive
  the same moves through `/_emulator/...`.
- Status: `GET /v2/{order_id}/status` is 404 until a method is chosen (as with Snap).
- Notifications: POSTed to the URL of `X-Override-Notification`, all values strings,
  `signature_key` = SHA-512(order_id + status_code + gross_amount + server key); a reply
  other than 2xx is retried a few times (Midtrans waits minutes; this, seconds).
- Refunds: `POST /v2/{order_id}/refund` on a settled QRIS/e-wallet payment, once per
  `refund_key`; a bank transfer answers 412.
- Iris: `POST /iris/api/v1/payouts` (idempotent by `X-Idempotency-Key`), `/payouts/approve`,
  `GET /payouts/{reference_no}`; callbacks signed `Iris-Signature` = SHA-512(body + merchant
  key).

Test controls (not Midtrans's): choose/pay/deny/expire a transaction, send a notification
that says what the test wants (forged, or contradicting the status API), make the gateway
answer 503 for a while, complete or fail a payout.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

log = logging.getLogger("panen.emulator")

JAKARTA = timezone(timedelta(hours=7))
STATUS_CODE = {  # transaction_status -> the status_code Midtrans sends with it
    "settlement": "200",
    "capture": "200",
    "refund": "200",
    "partial_refund": "200",
    "pending": "201",
    "deny": "202",
    "cancel": "202",
    "expire": "202",
}
BANK_TRANSFERS = {"bank_transfer", "echannel"}
# Snap's enabled_payments value -> the payment_type its notifications carry.
PAYMENT_TYPE = {
    "other_qris": "qris",
    "gopay": "gopay",
    "shopeepay": "shopeepay",
    "bca_va": "bank_transfer",
    "bni_va": "bank_transfer",
    "bri_va": "bank_transfer",
    "permata_va": "bank_transfer",
    "echannel": "echannel",
}
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)


def _now() -> str:
    return datetime.now(JAKARTA).strftime("%Y-%m-%d %H:%M:%S")


def _money(amount: int) -> str:
    return f"{amount}.00"


@dataclass
class Transaction:
    order_id: str
    gross_amount: int
    enabled: list[str]
    token: str
    notify_url: str | None
    finish_url: str | None
    transaction_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str | None = None  # None until the payer chooses a method
    payment_type: str | None = None
    va_number: str | None = None
    refunds: dict[str, int] = field(default_factory=dict)  # refund_key -> amount
    notified: list[dict[str, Any]] = field(default_factory=list)

    def as_status(self, server_key: str) -> dict[str, Any]:
        assert self.status is not None
        code = STATUS_CODE.get(self.status, "200")
        out: dict[str, Any] = {
            "status_code": code,
            "status_message": "Success, transaction is found",
            "transaction_id": self.transaction_id,
            "order_id": self.order_id,
            "gross_amount": _money(self.gross_amount),
            "currency": "IDR",
            "payment_type": self.payment_type,
            "transaction_time": _now(),
            "transaction_status": self.status,
            "fraud_status": "accept",
            "merchant_id": "G000PANEN",
            "signature_key": signature(self.order_id, code, _money(self.gross_amount), server_key),
        }
        if self.va_number:
            out["va_numbers"] = [{"bank": "bca", "va_number": self.va_number}]
        if self.refunds:
            out["refund_amount"] = _money(sum(self.refunds.values()))
        return out


@dataclass
class Payout:
    reference_no: str
    beneficiary_name: str
    beneficiary_account: str
    beneficiary_bank: str
    amount: str
    notes: str
    status: str = "queued"
    error_message: str | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


def signature(order_id: str, status_code: str, gross_amount: str, key: str) -> str:
    return hashlib.sha512((order_id + status_code + gross_amount + key).encode()).hexdigest()


class Midtrans:
    def __init__(
        self,
        server_key: str,
        iris_creator_key: str = "",
        iris_approver_key: str = "",
        iris_merchant_key: str = "",
        iris_callback_url: str | None = None,
        iris_auto_complete: bool = False,
    ) -> None:
        self.server_key = server_key
        self.iris_creator_key = iris_creator_key
        self.iris_approver_key = iris_approver_key
        self.iris_merchant_key = iris_merchant_key
        self.iris_callback_url = iris_callback_url
        self.iris_auto_complete = iris_auto_complete
        self.transactions: dict[str, Transaction] = {}
        self.tokens: dict[str, str] = {}
        self.payouts: dict[str, Payout] = {}
        self.idempotent: dict[str, dict[str, Any]] = {}
        self.down_until = 0.0  # answer 503 to API calls until then (loop time)
        self.contradicting: set[str] = set()  # orders whose status says pending, whatever
        self.tasks: set[asyncio.Task[None]] = set()

    # --- helpers ---------------------------------------------------------------------------

    def _authorised(self, request: Request, *keys: str) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user = base64.b64decode(header[6:]).decode().split(":", 1)[0]
        except ValueError:
            return False
        return bool(user) and user in keys

    def _down(self) -> bool:
        return asyncio.get_running_loop().time() < self.down_until

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(
        self, url: str, body: bytes, headers: dict[str, str], retry: bool = True
    ) -> int:
        """POST a notification, retrying as Midtrans does on anything but 2xx (a test's
        own delivery goes once, so that it sees the answer)."""
        status = 0
        async with httpx.AsyncClient(timeout=15) as http:
            for delay in (0.0, *RETRY_DELAYS_S) if retry else (0.0,):
                await asyncio.sleep(delay)
                try:
                    r = await http.post(url, content=body, headers=headers)
                    status = r.status_code
                except httpx.HTTPError:
                    status = 0
                if 200 <= status < 300:
                    break
        return status

    async def notify(
        self,
        txn: Transaction,
        override: dict[str, Any] | None = None,
        forge: bool = False,
        wait: bool = True,
    ) -> int:
        """Send the transaction's notification (as it is, or as `override` says)."""
        if txn.notify_url is None:
            return 0
        note = {**txn.as_status(self.server_key), **(override or {})}
        note["status_message"] = "midtrans payment notification"
        note["status_code"] = STATUS_CODE.get(note["transaction_status"], "200")
        key = "not-the-server-key" if forge else self.server_key
        note["signature_key"] = signature(
            note["order_id"], note["status_code"], note["gross_amount"], key
        )
        txn.notified.append(note)
        body = httpx.Request("POST", "http://x", json=note).content
        headers = {"Content-Type": "application/json"}
        if wait:
            return await self._deliver(txn.notify_url, body, headers, retry=False)
        self._spawn(self._deliver(txn.notify_url, body, headers))
        return 0

    # --- Snap ------------------------------------------------------------------------------

    async def snap_create(self, request: Request) -> Response:
        if self._down():
            return JSONResponse({"error_messages": ["Service unavailable"]}, 503)
        if not self._authorised(request, self.server_key):
            return JSONResponse(
                {"error_messages": ["Access denied, please check client or server key"]}, 401
            )
        try:
            body = await request.json()
            details = body["transaction_details"]
            order_id, gross = details["order_id"], details["gross_amount"]
            items = body.get("item_details") or []
            enabled = body.get("enabled_payments") or list(PAYMENT_TYPE)
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error_messages": ["transaction_details is required"]}, 400)
        if not isinstance(order_id, str) or not 0 < len(order_id) <= 50:
            return JSONResponse({"error_messages": ["transaction_details.order_id invalid"]}, 400)
        if not isinstance(gross, int) or gross <= 0:
            return JSONResponse(
                {"error_messages": ["transaction_details.gross_amount invalid"]}, 400
            )
        if items and sum(int(i["price"]) * int(i["quantity"]) for i in items) != gross:
            return JSONResponse(
                {
                    "error_messages": [
                        "transaction_details.gross_amount is not equal to the sum of item_details"
                    ]
                },
                400,
            )
        if order_id in self.transactions:
            return JSONResponse(
                {"error_messages": ["transaction_details.order_id sudah digunakan"]}, 400
            )
        token = str(uuid.uuid4())
        txn = Transaction(
            order_id=order_id,
            gross_amount=gross,
            enabled=[e for e in enabled if e in PAYMENT_TYPE] or list(PAYMENT_TYPE),
            token=token,
            notify_url=(request.headers.get("x-override-notification") or "").split(",")[0] or None,
            finish_url=(body.get("callbacks") or {}).get("finish"),
        )
        self.transactions[order_id] = txn
        self.tokens[token] = order_id
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {"token": token, "redirect_url": f"{base}/snap/v4/redirection/{token}"}, 201
        )

    async def snap_page(self, request: Request) -> Response:
        """The payer's page: what a person sees in the demo (choose, then pay)."""
        order_id = self.tokens.get(request.path_params["token"])
        if order_id is None:
            return HTMLResponse("<h1>Transaction not found</h1>", 404)
        txn = self.transactions[order_id]
        if request.method == "POST":
            # A plain urlencoded form (no multipart parser needed).
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            choice = str(form.get("channel") or txn.enabled[0])
            if txn.status is None and choice in txn.enabled:
                self._choose(txn, choice)
            if form.get("pay") and txn.status == "pending":
                txn.status = "settlement"
                await self.notify(txn, wait=False)
            if txn.finish_url and txn.status == "settlement":
                return RedirectResponse(txn.finish_url, 303)
        buttons = "".join(
            f'<label><input type="radio" name="channel" value="{e}"'
            f"{' checked' if i == 0 else ''}> {e}</label><br>"
            for i, e in enumerate(txn.enabled)
        )
        status = txn.status or "choose a method"
        return HTMLResponse(
            "<!doctype html><meta name=viewport content='width=device-width'>"
            "<title>Midtrans (emulator)</title>"
            f"<h1>Pay Rp {txn.gross_amount:,}</h1><p>Order {order_id}: {status}</p>"
            f"<form method=post>{buttons}<button name=pay value=1>Pay</button></form>"
            "<p><small>Panen's local Midtrans emulator: no money moves.</small></p>"
        )

    def _choose(self, txn: Transaction, channel: str) -> None:
        txn.payment_type = PAYMENT_TYPE.get(channel, "qris")
        txn.status = "pending"
        if txn.payment_type in BANK_TRANSFERS:
            txn.va_number = "".join(secrets.choice("0123456789") for _ in range(16))

    # --- Core API: status, refund, cancel, expire ------------------------------------------

    def _core_guard(self, request: Request) -> Response | None:
        if self._down():
            return JSONResponse({"status_code": "503", "status_message": "unavailable"}, 503)
        if not self._authorised(request, self.server_key):
            return JSONResponse(
                {"status_code": "401", "status_message": "Unknown Merchant server_key/id"}, 401
            )
        return None

    def _known(self, order_id: str) -> Transaction | None:
        txn = self.transactions.get(order_id)
        return txn if txn is not None and txn.status is not None else None

    async def status(self, request: Request) -> Response:
        refused = self._core_guard(request)
        if refused is not None:
            return refused
        txn = self._known(request.path_params["order_id"])
        if txn is None:
            return JSONResponse(
                {"status_code": "404", "status_message": "Transaction doesn't exist."}, 404
            )
        if txn.order_id in self.contradicting:
            # What a test asks for: the gateway's truth is other than a notification says.
            return JSONResponse(
                {
                    **txn.as_status(self.server_key),
                    "transaction_status": "pending",
                    "status_code": "201",
                }
            )
        return JSONResponse(txn.as_status(self.server_key))

    async def refund(self, request: Request) -> Response:
        refused = self._core_guard(request)
        if refused is not None:
            return refused
        txn = self._known(request.path_params["order_id"])
        if txn is None:
            return JSONResponse(
                {"status_code": "404", "status_message": "Transaction doesn't exist."}, 404
            )
        try:
            body = await request.json()
        except ValueError:
            body = {}
        key = str(body.get("refund_key") or uuid.uuid4())
        amount = int(body.get("amount") or txn.gross_amount)
        if key in txn.refunds:  # the same refund, asked again
            return JSONResponse(self._refund_answer(txn, key))
        if txn.status not in ("settlement", "partial_refund") or (
            txn.payment_type in BANK_TRANSFERS
        ):
            return JSONResponse(
                {
                    "status_code": "412",
                    "status_message": "Merchant cannot modify the status of the transaction",
                }
            )
        if amount <= 0 or sum(txn.refunds.values()) + amount > txn.gross_amount:
            return JSONResponse(
                {"status_code": "413", "status_message": "refund amount is invalid"}
            )
        txn.refunds[key] = amount
        txn.status = "refund" if sum(txn.refunds.values()) == txn.gross_amount else "partial_refund"
        await self.notify(txn, wait=False)
        return JSONResponse(self._refund_answer(txn, key))

    def _refund_answer(self, txn: Transaction, key: str) -> dict[str, Any]:
        return {
            "status_code": "200",
            "status_message": "Success, refund request is approved",
            "transaction_id": txn.transaction_id,
            "order_id": txn.order_id,
            "payment_type": txn.payment_type,
            "transaction_status": txn.status,
            "gross_amount": _money(txn.gross_amount),
            "refund_amount": _money(txn.refunds[key]),
            "refund_key": key,
        }

    async def close_transaction(self, request: Request) -> Response:
        """`/cancel` and `/expire` of a transaction not yet paid."""
        refused = self._core_guard(request)
        if refused is not None:
            return refused
        action = request.url.path.rsplit("/", 1)[1]
        txn = self.transactions.get(request.path_params["order_id"])
        if txn is None:
            return JSONResponse(
                {"status_code": "404", "status_message": "Transaction doesn't exist."}, 404
            )
        if txn.status not in (None, "pending"):
            return JSONResponse(
                {
                    "status_code": "412",
                    "status_message": "Merchant cannot modify the status of the transaction",
                }
            )
        txn.payment_type = txn.payment_type or "qris"
        txn.status = "cancel" if action == "cancel" else "expire"
        await self.notify(txn, wait=False)
        answer = txn.as_status(self.server_key)
        answer["status_code"] = "200" if action == "cancel" else "407"
        return JSONResponse(answer)

    # --- Iris ------------------------------------------------------------------------------

    async def iris_create(self, request: Request) -> Response:
        if self._down():
            return JSONResponse({"error_message": "Service unavailable"}, 503)
        if not self._authorised(request, self.iris_creator_key):
            return JSONResponse({"error_message": "Unauthorized"}, 401)
        key = request.headers.get("x-idempotency-key")
        if key and key in self.idempotent:
            return JSONResponse(self.idempotent[key], 201)
        try:
            body = await request.json()
            items = body["payouts"]
            assert isinstance(items, list) and items
            made = [
                Payout(
                    reference_no=uuid.uuid4().hex[:20],
                    beneficiary_name=str(p["beneficiary_name"]),
                    beneficiary_account=str(p["beneficiary_account"]),
                    beneficiary_bank=str(p["beneficiary_bank"]),
                    amount=str(p["amount"]),
                    notes=str(p.get("notes", "")),
                )
                for p in items
            ]
            for p in made:
                if not (p.beneficiary_account.isdigit() and float(p.amount) > 0):
                    raise ValueError(p.reference_no)
        except (ValueError, KeyError, TypeError, AssertionError):
            return JSONResponse(
                {"error_message": "An error occurred when creating payouts", "errors": ["invalid"]},
                400,
            )
        for p in made:
            self.payouts[p.reference_no] = p
        answer = {"payouts": [{"status": "queued", "reference_no": p.reference_no} for p in made]}
        if key:
            self.idempotent[key] = answer
        return JSONResponse(answer, 201)

    async def iris_approve(self, request: Request) -> Response:
        if self._down():
            return JSONResponse({"error_message": "Service unavailable"}, 503)
        if not self._authorised(request, self.iris_approver_key):
            return JSONResponse({"error_message": "Unauthorized"}, 401)
        try:
            refs = (await request.json())["reference_nos"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error_message": "reference_nos is required"}, 400)
        for ref in refs:
            payout = self.payouts.get(ref)
            if payout is None:
                return JSONResponse({"error_message": f"payout {ref} not found"}, 404)
            if payout.status == "queued":
                payout.status = "approved"
                await self._iris_callback(payout)
                if self.iris_auto_complete:
                    self._spawn(self._complete_later(payout))
        return JSONResponse({"status": "ok"})

    async def _complete_later(self, payout: Payout) -> None:
        await asyncio.sleep(1.0)
        await self.settle_payout(payout, "completed")

    async def settle_payout(self, payout: Payout, to: str, reason: str | None = None) -> None:
        if payout.status in ("completed", "failed", "rejected"):
            return
        payout.status = to
        payout.error_message = reason
        await self._iris_callback(payout)

    async def iris_get(self, request: Request) -> Response:
        if self._down():
            return JSONResponse({"error_message": "Service unavailable"}, 503)
        if not self._authorised(request, self.iris_creator_key, self.iris_approver_key):
            return JSONResponse({"error_message": "Unauthorized"}, 401)
        payout = self.payouts.get(request.path_params["reference_no"])
        if payout is None:
            return JSONResponse({"error_message": "Payout not found"}, 404)
        return JSONResponse(self._payout_json(payout))

    def _payout_json(self, p: Payout) -> dict[str, Any]:
        out = {
            "amount": p.amount,
            "beneficiary_name": p.beneficiary_name,
            "beneficiary_account": p.beneficiary_account,
            "bank": p.beneficiary_bank,
            "reference_no": p.reference_no,
            "notes": p.notes,
            "status": p.status,
            "created_at": p.created_at,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        if p.error_message:
            out["error_message"] = p.error_message
        return out

    async def _iris_callback(self, payout: Payout) -> None:
        if not self.iris_callback_url:
            return
        body = httpx.Request(
            "POST",
            "http://x",
            json={
                "reference_no": payout.reference_no,
                "amount": payout.amount,
                "status": payout.status,
                "updated_at": datetime.now(UTC).isoformat(),
                **({"error_message": payout.error_message} if payout.error_message else {}),
            },
        ).content
        mac = hashlib.sha512(body + self.iris_merchant_key.encode()).hexdigest()
        headers = {"Content-Type": "application/json", "Iris-Signature": mac}
        self._spawn(self._deliver(self.iris_callback_url, body, headers))

    # --- Test controls ---------------------------------------------------------------------

    async def control(self, request: Request) -> Response:
        action = request.path_params["action"]
        try:
            body = await request.json()
        except ValueError:
            body = {}
        if action == "down":
            self.down_until = asyncio.get_running_loop().time() + float(body.get("seconds", 0))
            return JSONResponse({"down_for": body.get("seconds", 0)})
        if action in ("payout_complete", "payout_fail"):
            payout = self.payouts.get(str(body.get("reference_no")))
            if payout is None:
                return JSONResponse({"error": "no such payout"}, 404)
            await self.settle_payout(
                payout,
                "completed" if action == "payout_complete" else "failed",
                body.get("reason"),
            )
            return JSONResponse(self._payout_json(payout))
        if action == "payouts":
            return JSONResponse({"payouts": [self._payout_json(p) for p in self.payouts.values()]})
        txn = self.transactions.get(str(body.get("order_id")))
        if txn is None:
            return JSONResponse({"error": "no such transaction"}, 404)
        delivered = 0
        if action == "choose":
            self._choose(txn, str(body.get("channel") or txn.enabled[0]))
            delivered = await self.notify(txn)
        elif action in ("pay", "deny", "expire"):
            if txn.status is None:
                self._choose(txn, str(body.get("channel") or txn.enabled[0]))
            txn.status = {"pay": "settlement", "deny": "deny", "expire": "expire"}[action]
            delivered = await self.notify(txn)
        elif action == "notify":
            # A notification saying what the test asks (the truth stays as it is).
            if body.get("contradict"):
                self.contradicting.add(txn.order_id)
            override = {k: v for k, v in body.items() if k in ("transaction_status",)}
            delivered = await self.notify(txn, override, forge=bool(body.get("forge")))
        elif action != "state":
            return JSONResponse({"error": f"unknown action {action}"}, 404)
        return JSONResponse(
            {
                "order_id": txn.order_id,
                "status": txn.status,
                "payment_type": txn.payment_type,
                "refunds": txn.refunds,
                "notified": len(txn.notified),
                "delivered": delivered,
            }
        )


def create_app(emulator: Midtrans) -> Starlette:
    routes = [
        Route("/snap/v1/transactions", emulator.snap_create, methods=["POST"]),
        Route("/snap/v4/redirection/{token}", emulator.snap_page, methods=["GET", "POST"]),
        Route("/v2/{order_id}/status", emulator.status, methods=["GET"]),
        Route("/v2/{order_id}/refund", emulator.refund, methods=["POST"]),
        Route("/v2/{order_id}/refund/online/direct", emulator.refund, methods=["POST"]),
        Route("/v2/{order_id}/cancel", emulator.close_transaction, methods=["POST"]),
        Route("/v2/{order_id}/expire", emulator.close_transaction, methods=["POST"]),
        Route("/iris/api/v1/payouts", emulator.iris_create, methods=["POST"]),
        Route("/iris/api/v1/payouts/approve", emulator.iris_approve, methods=["POST"]),
        Route("/iris/api/v1/payouts/{reference_no}", emulator.iris_get, methods=["GET"]),
        Route("/_emulator/{action}", emulator.control, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = emulator
    return app
