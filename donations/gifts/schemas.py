"""Request bodies and JSON of gifts, and how a giver's name is shown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import StringConstraints

from commerce.payments.models import Payment
from core.clock import rfc3339
from core.fields import Amount, Currency, Id
from core.http import Body, frame_body
from core.shapes import NotRequired, TypedDict, closed
from donations.charity.schemas import ReceiptProof
from donations.gifts.models import Donation

ANONYMOUS = "Anonymous"


Visibility = Literal["public", "first_name", "anonymous"]


Message = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=280)]


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


@closed
class DonationOut(TypedDict):
    id: str
    charity_id: str
    session_id: str | None
    amount: int
    currency: str
    message: str | None
    visibility: str
    status: str
    created_at: str | None
    paid_at: str | None
    # Its donor's only:
    donor_id: NotRequired[str]
    idempotency_key: NotRequired[str]
    message_status: NotRequired[str]


@closed
class GiftPaymentOut(TypedDict):
    id: str
    provider: str
    status: str
    amount: int
    currency: str
    donation_id: str


@closed
class GiftReply(TypedDict):
    donation: DonationOut
    payment: GiftPaymentOut


@closed
class DonationList(TypedDict):
    donations: list[DonationOut]


@closed
class QueuedMessage(TypedDict):
    donation_id: str
    display_name: str
    amount: int
    currency: str
    message: str | None
    status: str
    paid_at: str | None


@closed
class MessageQueue(TypedDict):
    messages: list[QueuedMessage]


@closed
class Moderated(TypedDict):
    donation_id: str
    status: str


def donation_json(d: Donation, *, private: bool = True) -> DonationOut:
    out: DonationOut = {
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


def payment_json(d: Donation, payment: Payment) -> GiftPaymentOut:
    return {
        "id": payment.id,
        "provider": payment.provider,
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "donation_id": d.id,
    }


class MessageAction(Body):
    action: Literal["approve", "hide", "read"]


MESSAGE_STATUS = {"approve": "approved", "hide": "hidden", "read": "read"}


def message_shown(message_status: str, moderated: bool) -> bool:
    """Whether a paid gift's message is shown to its room: never once hidden; once the
    host approved or read it out; before that only in a room that does not hold messages
    back. The one rule for the paid event and for every moderation after it."""
    if message_status in ("approved", "read"):
        return True
    return message_status == "pending" and not moderated


def gift_frame(fields: Mapping[str, Any]) -> tuple[Donate, str]:
    """The socket's `donate` frame, checked exactly as `POST /api/donations` is."""
    return frame_body(Donate, fields)


@closed
class DonationReceipt(ReceiptProof):
    donation: DonationOut
