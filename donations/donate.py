"""Donating: HTTP and the WebSocket `donate` frame share `make_donation`; the payment goes
through the same provider and signed webhook as an order's, and the paid gift reaches the
charity's books, the transparency log, the sponsor matches and the room in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import StringConstraints, ValidationError
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from commerce import hooks, ledger, outbox
from commerce.models import Charity, LiveSession
from commerce.order_models import Payment
from commerce.payments import (
    DEFAULT_PROVIDER,
    SandboxProvider,
    WebhookEvent,
    handle_webhook,
    provider_for,
)
from commerce.sessions import load_session, require_host
from core.auth import Principal
from core.clock import rfc3339, utcnow
from core.errors import ApiError, bad_request, conflict, forbidden, not_found
from core.fields import Amount, Currency, Id
from core.http import LOGGED_IN, Body, Ctx, json
from core.ids import new_id
from core.models import User
from core.services import Services
from donations import energy, funds
from donations.models import Donation
from donations.routes import api

PAYMENT_PREFIX = "dpy"
ANONYMOUS = "Anonymous"

Visibility = Literal["public", "first_name", "anonymous"]
Message = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=280)]
IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")
]


class Donate(Body):
    charity_id: Id
    session_id: Id | None = None
    amount: Amount
    currency: Currency | None = None
    message: Message | None = None
    visibility: Visibility = "public"


def display_name(user_name: str, visibility: str) -> str:
    """The name every public surface shows for a giver, as they chose."""
    if visibility == "anonymous":
        return ANONYMOUS
    if visibility == "first_name":
        return (user_name.split() or [ANONYMOUS])[0]
    return user_name


def donation_json(d: Donation, *, private: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": d.id,
        "charity_id": d.charity_id,
        "session_id": d.session_id,
        "amount": d.amount,
        "currency": d.currency,
        "message": d.message if d.message_status != "hidden" or private else None,
        "visibility": d.visibility,
        "status": d.status,
        "created_at": rfc3339(d.created_at),
        "paid_at": rfc3339(d.paid_at),
    }
    if private:
        out["donor_id"] = d.donor_id
        out["idempotency_key"] = d.idempotency_key
        out["message_status"] = d.message_status
    return out


def payment_json(d: Donation) -> dict[str, Any]:
    return {
        "id": d.payment_id,
        "provider": d.provider,
        "status": d.payment_status,
        "amount": d.amount,
        "currency": d.currency,
        "donation_id": d.id,
    }


def _same_request(d: Donation, body: Donate, currency: str) -> bool:
    return (d.charity_id, d.session_id, d.amount, d.currency, d.message, d.visibility) == (
        body.charity_id,
        body.session_id,
        body.amount,
        currency,
        body.message,
        body.visibility,
    )


async def _target(s: AsyncSession, body: Donate) -> str:
    """Check the charity and the room; returns the gift's currency."""
    charity = await s.get(Charity, body.charity_id)
    if charity is None:
        raise not_found("charity", body.charity_id)
    if body.session_id is None:
        return body.currency or "IDR"
    live = await s.get(LiveSession, body.session_id)
    if live is None:
        raise not_found("session", body.session_id)
    if live.charity_id != body.charity_id:
        raise bad_request("invalid_field", "this session gives to another charity", "charity_id")
    if live.status != "live":
        raise conflict("session_not_live", "the session is not live", status=live.status)
    if body.currency is not None and body.currency != live.currency:
        raise bad_request("invalid_field", f"this session is in {live.currency}", "currency")
    return live.currency


async def donate(
    services: Services, principal: Principal, body: Donate, idempotency_key: str
) -> tuple[dict[str, Any], bool]:
    """Record a pledge-to-pay and open its payment; returns ({donation, payment}, created).
    The same key with the same body gives the same donation; with another body, 409."""
    provider = provider_for(services, DEFAULT_PROVIDER)
    async with services.db.transaction() as s:
        currency = await _target(s, body)
        donation_id, payment_id = new_id("don"), new_id(PAYMENT_PREFIX)
        provider_ref = await provider.create_intent(payment_id, body.amount, currency)
        inserted = await s.scalar(
            pg_insert(Donation)
            .values(
                id=donation_id,
                donor_id=principal.user_id,
                charity_id=body.charity_id,
                session_id=body.session_id,
                idempotency_key=idempotency_key,
                amount=body.amount,
                currency=currency,
                message=body.message,
                message_status="none" if body.message is None else "pending",
                visibility=body.visibility,
                status="pending",
                payment_id=payment_id,
                provider=provider.name,
                provider_ref=provider_ref,
                payment_status="pending",
                donor_salt=funds.new_salt(),
            )
            .on_conflict_do_nothing(index_elements=[Donation.donor_id, Donation.idempotency_key])
            .returning(Donation.id)
        )
        created = inserted is not None
        found = await s.scalar(
            select(Donation)
            .where(
                Donation.donor_id == principal.user_id,
                Donation.idempotency_key == idempotency_key,
            )
            .execution_options(populate_existing=True)
        )
        assert found is not None
        if not created and not _same_request(found, body, currency):
            raise conflict(
                "idempotency_key_reused",
                "this idempotency key was used for a different donation",
                donation_id=found.id,
            )
    return {"donation": donation_json(found), "payment": payment_json(found)}, created


async def make_donation(
    services: Services,
    principal: Principal,
    body: Mapping[str, Any] | Donate,
    idempotency_key: str,
) -> dict[str, Any]:
    """The WebSocket `donate` frame's entry point: `{donation, payment}`, or ApiError with
    the offending field (unknown frame fields such as `type` and `id` are ignored)."""
    if not isinstance(body, Donate):
        known = {k: v for k, v in body.items() if k in Donate.model_fields}
        try:
            body = Donate.model_validate(known)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            code = "missing_field" if first["type"] == "missing" else "invalid_field"
            raise bad_request(code, f"{where}: {first['msg']}", where) from None
    key_ok = 0 < len(idempotency_key) <= 100 and all(
        0x21 <= ord(c) <= 0x7E for c in idempotency_key
    )
    if not key_ok:
        raise bad_request("invalid_field", "1-100 printable ASCII characters", "idempotency_key")
    out, _ = await donate(services, principal, body, idempotency_key)
    return out


# --- Payment: the donation's own, applied through the provider's webhook ----------------


async def settle(s: AsyncSession, d: Donation, at: Any) -> funds.OutboxRows:
    """The paid gift reaches the charity: ledger, log, fund, matches, room sums, events."""
    await ledger.post(
        s,
        "donation",
        f"donation:{d.id}",
        d.currency,
        [
            ledger.Entry(ledger.buyer_clearing(d.provider), -d.amount),
            ledger.Entry(ledger.charity_payable(d.charity_id), d.amount),
        ],
    )
    received = funds.Movement(
        kind="donation",
        ref=f"donation:{d.id}",
        charity_id=d.charity_id,
        session_id=d.session_id,
        amount=d.amount,
        currency=d.currency,
        at=at,
        data={"donation_id": d.id},
        donor_id=d.donor_id,
        donor_salt=d.donor_salt,
    )
    appended = await funds.receive(s, received)
    donor = await s.get(User, d.donor_id)
    name = display_name(donor.display_name if donor else ANONYMOUS, d.visibility)
    event: dict[str, Any] = {
        "type": "donation",
        "donation_id": d.id,
        "amount": d.amount,
        "currency": d.currency,
        "display_name": name,
        "charity_id": d.charity_id,
        "entry_index": appended.index,
        "at": rfc3339(at),
    }
    if d.message is not None:
        event["message"] = d.message
    events: funds.OutboxRows = [(f"me:{d.donor_id}", {**event, "status": "paid"})]
    if d.session_id is not None:
        events.append((f"session:{d.session_id}", {**event, "session_id": d.session_id}))
        before, _ = await funds.bump_session(s, d.session_id, donated=d.amount)
        matched, match_events = await funds.apply_matches(s, received, appended.index, at)
        if matched:
            await funds.bump_session(s, d.session_id, matched=matched)
        events += match_events
        events += await funds.milestone(s, d.session_id, before, before + d.amount + matched, at)
    # Giving earns energy points, in this same transaction.
    events += await energy.for_donation(s, d.donor_id, d.id, d.session_id, d.amount, d.currency, at)
    return events


class DonationPayments:
    """Owns payments with ids `dpy_…` (registered with commerce.hooks)."""

    async def apply_webhook(
        self, services: Services, provider: str, event: WebhookEvent
    ) -> dict[str, Any]:
        async with services.db.transaction() as s:
            fresh = await s.scalar(
                text(
                    "INSERT INTO webhook_events (provider, event_id, payment_id)"
                    " VALUES (:p, :e, :pay) ON CONFLICT DO NOTHING RETURNING event_id"
                ),
                {"p": provider, "e": event.id, "pay": event.payment_id},
            )
            if fresh is None:
                return {"status": "duplicate", "event_id": event.id}
            d = await s.scalar(
                select(Donation).where(Donation.payment_id == event.payment_id).with_for_update()
            )
            if d is None or d.provider != provider:
                return {"status": "ignored", "reason": "unknown payment", "event_id": event.id}
            if (event.amount, event.currency) != (d.amount, d.currency):
                return {"status": "ignored", "reason": "amount mismatch", "event_id": event.id}
            if d.payment_status != "pending":
                return {"status": "ignored", "reason": f"payment {d.payment_status}"}
            now = utcnow()
            if event.type == "payment.failed":
                d.payment_status, d.status = "failed", "failed"
                events: funds.OutboxRows = []
            else:
                d.payment_status, d.status, d.paid_at = "succeeded", "paid", now
                events = await settle(s, d, now)
            await outbox.add(s, events)
            status = d.payment_status
        await outbox.relay(services)
        return {"status": "applied", "event_id": event.id, "payment_status": status}

    async def sandbox_decide(
        self, services: Services, principal: Principal, payment_id: str, succeeded: bool
    ) -> dict[str, Any]:
        async with services.db.reader() as s:
            d = await s.scalar(select(Donation).where(Donation.payment_id == payment_id))
        if d is None or d.provider != "sandbox":
            raise not_found("payment", payment_id)
        if d.donor_id != principal.user_id and not principal.is_admin:
            raise forbidden("only the payer may approve or decline this payment")
        if d.payment_status != "pending":
            raise conflict(
                "payment_not_pending",
                f"this payment is {d.payment_status}",
                status=d.payment_status,
            )
        provider = provider_for(services, "sandbox")
        assert isinstance(provider, SandboxProvider)
        # The sandbox signs what a gateway would send about this payment.
        view = Payment(id=d.payment_id, amount=d.amount, currency=d.currency)
        headers, body = provider.webhook(view, succeeded, time.time())
        result = await handle_webhook(services, "sandbox", headers, body)
        async with services.db.reader() as s:
            fresh = await s.get(Donation, d.id)
        assert fresh is not None
        return {"payment": payment_json(fresh), "donation": donation_json(fresh), "webhook": result}


def register() -> None:
    hooks.own_payments(PAYMENT_PREFIX, DonationPayments())


# --- HTTP ------------------------------------------------------------------------------------


@api.post("/api/donations", LOGGED_IN)
async def create_donation(ctx: Ctx) -> Response:
    key = ctx.idempotency_key()
    body = await ctx.body(Donate)
    out, created = await donate(ctx.services, ctx.user, body, key)
    return json(out, 201 if created else 200)


async def load_donation(services: Services, principal: Principal, donation_id: str) -> Donation:
    """A donation its donor (or an admin) may read; 404 for anyone else."""
    async with services.db.reader() as s:
        d = await s.get(Donation, donation_id)
    if d is None or not (d.donor_id == principal.user_id or principal.is_admin):
        raise not_found("donation", donation_id)
    return d


@api.get("/api/donations/{donation_id}", LOGGED_IN)
async def get_donation(ctx: Ctx) -> Response:
    d = await load_donation(ctx.services, ctx.user, ctx.path("donation_id"))
    return json({"donation": donation_json(d), "payment": payment_json(d)})


@api.get("/api/me/donations", LOGGED_IN)
async def my_donations(ctx: Ctx) -> Response:
    limit = ctx.query_int("limit", 50, 1, 200)
    async with ctx.services.db.reader() as s:
        rows = (
            await s.execute(
                select(Donation)
                .where(Donation.donor_id == ctx.user.user_id)
                .order_by(Donation.id.desc())
                .limit(limit)
            )
        ).scalars()
        return json({"donations": [donation_json(d) for d in rows]})


# --- The host's read-out queue of donor messages ---------------------------------------


class MessageAction(Body):
    action: Literal["approve", "hide", "read"]


MESSAGE_STATUS = {"approve": "approved", "hide": "hidden", "read": "read"}


@api.get("/api/sessions/{session_id}/donation-messages", LOGGED_IN)
async def donation_messages(ctx: Ctx) -> Response:
    """Paid gifts with a message, oldest first: `?status=pending` (default) is the queue."""
    live = await load_session(ctx.services.db, ctx.path("session_id"))
    require_host(ctx.user, live)
    status = ctx.query("status") or "pending"
    if status not in ("pending", "approved", "hidden", "read", "all"):
        raise bad_request("invalid_field", "unknown message status", "status")
    async with ctx.services.db.reader() as s:
        q = (
            select(Donation, User.display_name)
            .join(User, User.id == Donation.donor_id)
            .where(Donation.session_id == live.id, Donation.status == "paid")
            .where(Donation.message_status != "none")
            .order_by(Donation.paid_at, Donation.id)
            .limit(ctx.query_int("limit", 100, 1, 500))
        )
        if status != "all":
            q = q.where(Donation.message_status == status)
        rows = (await s.execute(q)).all()
    return json(
        {
            "messages": [
                {
                    "donation_id": d.id,
                    "display_name": display_name(name, d.visibility),
                    "amount": d.amount,
                    "currency": d.currency,
                    "message": d.message,
                    "status": d.message_status,
                    "paid_at": rfc3339(d.paid_at),
                }
                for d, name in rows
            ]
        }
    )


@api.post("/api/donations/{donation_id}/message", LOGGED_IN)
async def moderate_message(ctx: Ctx) -> Response:
    body = await ctx.body(MessageAction)
    donation_id = ctx.path("donation_id")
    async with ctx.services.db.transaction() as s:
        d = await s.get(Donation, donation_id, with_for_update=True)
        if d is None or d.session_id is None:
            raise not_found("donation", donation_id)
        live = await s.get(LiveSession, d.session_id)
        assert live is not None
        require_host(ctx.user, live)
        if d.message_status == "none":
            raise ApiError(409, "no_message", "this donation carries no message")
        d.message_status = MESSAGE_STATUS[body.action]
    return json({"donation_id": d.id, "status": d.message_status})
