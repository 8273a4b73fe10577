"""Giving: HTTP and the WebSocket donate frame share make_donation; the payment goes through
the same provider and signed webhook as an order's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from commerce import hooks
from commerce.charities.models import Charity
from commerce.ledger import service as ledger
from commerce.outbox import service as outbox
from commerce.payments.models import Payment
from commerce.payments.providers import (
    DEFAULT_PROVIDER,
    SandboxProvider,
    WebhookEvent,
    provider_for,
)
from commerce.payments.service import handle_webhook
from commerce.sessions.models import LiveSession
from core.auth import Principal
from core.clock import rfc3339, utcnow
from core.errors import bad_request, conflict, forbidden, not_found
from core.ids import new_id
from core.models import User
from core.services import Services
from donations.charity import funds
from donations.energy import earning as energy
from donations.gifts.models import Donation
from donations.gifts.schemas import ANONYMOUS, Donate, display_name, donation_json, payment_json

PAYMENT_PREFIX = "dpy"


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


async def load_donation(services: Services, principal: Principal, donation_id: str) -> Donation:
    """A donation its donor (or an admin) may read; 404 for anyone else."""
    async with services.db.reader() as s:
        d = await s.get(Donation, donation_id)
    if d is None or not (d.donor_id == principal.user_id or principal.is_admin):
        raise not_found("donation", donation_id)
    return d
