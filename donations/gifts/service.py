"""Giving: HTTP and the socket's `donate` frame both call `give` with a body checked by
`schemas.Donate`; the gift's payment goes through the same providers, webhook and payment
lifecycle as an order's. What follows a paid gift (the ledger, the charity's books, the
log, energy points) is composed by `panen.flows.payment`; here is the gift itself.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.charities.models import Charity
from commerce.ledger import service as ledger
from commerce.payments import service as payments
from commerce.payments.models import Payment
from commerce.payments.providers import checkout_provider
from commerce.sessions.lifecycle import SessionStatus
from commerce.sessions.models import LiveSession
from core.auth import Principal
from core.clock import rfc3339
from core.errors import bad_request, conflict, not_found
from core.events import Topical
from core.ids import new_id
from core.models import User
from core.services import Services
from donations.charity import service as charity
from donations.gifts.events import Donation as DonationEvent
from donations.gifts.lifecycle import GiftStatus
from donations.gifts.models import Donation
from donations.gifts.schemas import (
    ANONYMOUS,
    Donate,
    GiftReply,
    display_name,
    donation_json,
    message_shown,
    payment_json,
)

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
    charity_row = await s.get(Charity, body.charity_id)
    if charity_row is None:
        raise not_found("charity", body.charity_id)
    if body.session_id is None:
        return body.currency or "IDR"
    live = await s.get(LiveSession, body.session_id)
    if live is None:
        raise not_found("session", body.session_id)
    if live.charity_id != body.charity_id:
        raise bad_request("invalid_field", "this session gives to another charity", "charity_id")
    if live.status != SessionStatus.LIVE:
        raise conflict("session_not_live", "the session is not live", status=live.status)
    if body.currency is not None and body.currency != live.currency:
        raise bad_request("invalid_field", f"this session is in {live.currency}", "currency")
    return live.currency


async def _by_key(s: AsyncSession, donor_id: str, key: str) -> tuple[Donation, Payment] | None:
    row = (
        await s.execute(
            select(Donation, Payment)
            .join(Payment, Payment.id == Donation.payment_id)
            .where(Donation.donor_id == donor_id, Donation.idempotency_key == key)
            .execution_options(populate_existing=True)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def _answer(
    s: AsyncSession, body: Donate, currency: str, key: str, donor_id: str
) -> GiftReply | None:
    """The gift this key already made (same body), 409 for another body, None if none."""
    found = await _by_key(s, donor_id, key)
    if found is None:
        return None
    gift, payment = found
    if not _same_request(gift, body, currency):
        raise conflict(
            "idempotency_key_reused",
            "this idempotency key was used for a different donation",
            donation_id=gift.id,
        )
    return {"donation": donation_json(gift), "payment": payment_json(gift, payment)}


async def donate(
    services: Services, principal: Principal, body: Donate, idempotency_key: str
) -> tuple[GiftReply, bool]:
    """Record a gift and open its payment; returns ({donation, payment}, created). The same
    key with the same body gives the same gift; with another body, 409."""
    async with services.db.reader() as s:
        currency = await _target(s, body)
        prior = await _answer(s, body, currency, idempotency_key, principal.user_id)
    if prior is not None:
        return prior, False
    # The gateway is asked once the payer chooses a method (`flows.payment.checkout`).
    provider = checkout_provider(services)
    donation_id, payment_id = new_id("don"), new_id(PAYMENT_PREFIX)
    async with services.db.transaction() as s:
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
                status=GiftStatus.PENDING,
                payment_id=payment_id,
                donor_salt=charity.new_salt(),
            )
            .on_conflict_do_nothing(index_elements=[Donation.donor_id, Donation.idempotency_key])
            .returning(Donation.id)
        )
        if inserted is not None:  # its payment; the deferred key checks both at commit
            payments.add(
                s,
                payment_id=payment_id,
                purpose="gift",
                payer_id=principal.user_id,
                provider=provider.name,
                provider_ref=None,
                amount=body.amount,
                currency=currency,
            )
            await s.flush()
        out = await _answer(s, body, currency, idempotency_key, principal.user_id)
    assert out is not None
    return out, inserted is not None


async def load_donation(
    services: Services, principal: Principal, donation_id: str
) -> tuple[Donation, Payment]:
    """A gift its donor (or an admin) may read, with its payment; 404 for anyone else."""
    async with services.db.reader() as s:
        row = (
            await s.execute(
                select(Donation, Payment)
                .join(Payment, Payment.id == Donation.payment_id)
                .where(Donation.id == donation_id)
            )
        ).first()
    if row is None or not (row[0].donor_id == principal.user_id or principal.is_admin):
        raise not_found("donation", donation_id)
    return row[0], row[1]


async def by_payment(services: Services, payment_id: str) -> tuple[Donation, Payment]:
    async with services.db.reader() as s:
        row = (
            await s.execute(
                select(Donation, Payment)
                .join(Payment, Payment.id == Donation.payment_id)
                .where(Payment.id == payment_id)
            )
        ).first()
    if row is None:
        raise not_found("payment", payment_id)
    return row[0], row[1]


async def lock_by_payment(s: AsyncSession, payment_id: str) -> Donation | None:
    """The gift a payment is for, row-locked (before its payment: docs/architecture.md)."""
    return await s.scalar(
        select(Donation)
        .where(Donation.payment_id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


# --- What a paid gift moves (the payment flow calls these in order) -------------------


def ledger_entries(gift: Donation, payment: Payment) -> list[ledger.Entry]:
    return [
        ledger.Entry(ledger.buyer_clearing(payment.provider), -gift.amount),
        ledger.Entry(ledger.charity_payable(gift.charity_id), gift.amount),
    ]


def movement(gift: Donation, at: datetime) -> charity.Movement:
    return charity.Movement(
        kind="donation",
        ref=f"donation:{gift.id}",
        charity_id=gift.charity_id,
        session_id=gift.session_id,
        amount=gift.amount,
        currency=gift.currency,
        at=at,
        data={"donation_id": gift.id},
        donor_id=gift.donor_id,
        donor_salt=gift.donor_salt,
    )


async def paid_events(s: AsyncSession, gift: Donation, at: datetime) -> list[Topical]:
    """The paid gift, for its giver and its room, named as the giver chose. Their
    `entry_index` is filled in when the log sequences the gift's entry (outbox `entry_of`)."""
    donor = await s.get(User, gift.donor_id)
    event = DonationEvent(
        donation_id=gift.id,
        amount=gift.amount,
        currency=gift.currency,
        display_name=display_name(donor.display_name if donor else ANONYMOUS, gift.visibility),
        charity_id=gift.charity_id,
        entry_index=None,
        at=rfc3339(at),
        message=gift.message if gift.message_status != "hidden" else None,
    )
    rows: list[Topical] = [(f"me:{gift.donor_id}", replace(event, status=gift.status))]
    if gift.session_id is not None:
        room = await s.get(LiveSession, gift.session_id)
        moderated = room is not None and room.moderate_messages
        shown = message_shown(gift.message_status, moderated)
        rows.append(
            (
                f"session:{gift.session_id}",
                replace(event, session_id=gift.session_id, message=gift.message if shown else None),
            )
        )
    return rows
