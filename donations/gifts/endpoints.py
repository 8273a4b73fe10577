"""HTTP: giving, reading one's gifts, and the host's read-out queue of donor messages."""

from __future__ import annotations

from sqlalchemy import select
from starlette.responses import Response

from commerce.outbox import service as outbox
from commerce.sessions.models import LiveSession
from commerce.sessions.service import load_session, require_host
from core.clock import rfc3339, utcnow
from core.errors import ApiError, bad_request, not_found
from core.http import LIMIT, LOGGED_IN, Api, Ctx, Query, json
from core.models import User
from donations.charity.receipts import build, fund_of
from donations.gifts.events import DonationMessage, MessageHidden
from donations.gifts.lifecycle import GiftStatus
from donations.gifts.models import Donation
from donations.gifts.schemas import (
    ANONYMOUS,
    MESSAGE_STATUS,
    Donate,
    DonationList,
    DonationReceipt,
    GiftReply,
    MessageAction,
    MessageQueue,
    Moderated,
    display_name,
    donation_json,
    message_shown,
    payment_json,
)
from donations.gifts.service import donate, load_donation

api = Api()


@api.post("/api/donations", LOGGED_IN, body=Donate, idempotent=True, status=201, response=GiftReply)
async def create_donation(ctx: Ctx) -> Response:
    key = ctx.idempotency_key()
    body = await ctx.body(Donate)
    out, created = await donate(ctx.services, ctx.user, body, key)
    return json(out, 201 if created else 200)


@api.get("/api/donations/{donation_id}", LOGGED_IN, response=GiftReply)
async def get_donation(ctx: Ctx) -> Response:
    d, payment = await load_donation(ctx.services, ctx.user, ctx.path("donation_id"))
    return json({"donation": donation_json(d), "payment": payment_json(d, payment)})


@api.get("/api/me/donations", LOGGED_IN, query=(LIMIT,), response=DonationList)
async def my_donations(ctx: Ctx) -> Response:
    limit = ctx.query_int("limit")
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


@api.get(
    "/api/sessions/{session_id}/donation-messages",
    LOGGED_IN,
    query=(
        Query("status", choices=("pending", "approved", "hidden", "read", "all")),
        Query("limit", int, 100, 1, 500),
    ),
    response=MessageQueue,
)
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
            .where(Donation.session_id == live.id, Donation.status == GiftStatus.PAID)
            .where(Donation.message_status != "none")
            .order_by(Donation.paid_at, Donation.id)
            .limit(ctx.query_int("limit"))
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


@api.post("/api/donations/{donation_id}/message", LOGGED_IN, body=MessageAction, response=Moderated)
async def moderate_message(ctx: Ctx) -> Response:
    """The host's read-out queue. In a room that holds messages back, approving one shows
    it to the room; hiding one takes it off every page and out of the room's replay."""
    body = await ctx.body(MessageAction)
    donation_id = ctx.path("donation_id")
    async with ctx.services.db.transaction() as s:
        # Who may act is checked before the gift is locked, and a gift the caller may not
        # read (neither its host's, nor an admin's, nor their own) does not exist to them.
        d = await s.get(Donation, donation_id)
        live = None if d is None or d.session_id is None else await s.get(LiveSession, d.session_id)
        if d is None or live is None:
            raise not_found("donation", donation_id)
        if ctx.user.user_id not in (live.host_id, d.donor_id) and not ctx.user.is_admin:
            raise not_found("donation", donation_id)
        require_host(ctx.user, live)  # its donor reads it, but moderates nothing: 403
        d = await s.get(Donation, donation_id, with_for_update=True, populate_existing=True)
        assert d is not None
        if d.message_status == "none" or d.message is None:
            raise ApiError(409, "no_message", "this donation carries no message")
        if d.message_status == "hidden" and body.action == "read":
            # Read out on air is no way back for a hidden message: approving it is.
            raise ApiError(409, "message_hidden", "this message is hidden; approve it first")
        was, d.message_status = d.message_status, MESSAGE_STATUS[body.action]
        # Before payment the room has seen nothing; the paid event will follow this status.
        paid = d.status == GiftStatus.PAID
        before = paid and message_shown(was, live.moderate_messages)
        after = paid and message_shown(d.message_status, live.moderate_messages)
        topic = f"session:{d.session_id}"
        if before and not after:
            await outbox.add(s, [(topic, MessageHidden(session_id=live.id, donation_id=d.id))])
        elif after and not before:
            donor = await s.get(User, d.donor_id)
            shown = DonationMessage(
                session_id=live.id,
                donation_id=d.id,
                display_name=display_name(donor.display_name if donor else ANONYMOUS, d.visibility),
                amount=d.amount,
                currency=d.currency,
                message=d.message,
                at=rfc3339(utcnow()),
            )
            await outbox.add(s, [(topic, shown)])
    await outbox.deliver(ctx.services)
    return json({"donation_id": d.id, "status": d.message_status})


@api.get("/api/donations/{donation_id}/receipt", LOGGED_IN, response=DonationReceipt)
async def donation_receipt(ctx: Ctx) -> Response:
    """The donor's proof: the log entry, its inclusion proof in a signed checkpoint, the
    salt of the donor's commitment, and the trace of where the money went."""
    d, _ = await load_donation(ctx.services, ctx.user, ctx.path("donation_id"))
    if d.status != GiftStatus.PAID:
        raise ApiError(409, "not_settled", f"the donation is {d.status}", {"status": d.status})
    fund = await fund_of(ctx.services, f"donation:{d.id}")
    body = await build(ctx.services, fund, str(ctx.request.base_url))
    return json({"donation": donation_json(d), **body})
