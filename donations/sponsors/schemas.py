"""Request bodies and JSON of sponsors' top-ups and funds."""

from __future__ import annotations

from commerce.payments.schemas import PaymentOut
from core.clock import rfc3339
from core.fields import Amount, Currency
from core.http import Body
from core.shapes import TypedDict, closed
from donations.sponsors.models import TopUp


class AddFunds(Body):
    amount: Amount
    currency: Currency = "IDR"


@closed
class TopUpOut(TypedDict):
    id: str
    sponsor_id: str
    amount: int
    currency: str
    status: str  # pending | paid | failed
    idempotency_key: str
    created_at: str | None
    paid_at: str | None


@closed
class TopUpReply(TypedDict):
    top_up: TopUpOut
    payment: PaymentOut


@closed
class FundsIn(TypedDict):
    """A sponsor's money in one currency, each number named for what it is."""

    currency: str
    topped_up: int  # paid in through top-ups
    matched: int  # given by their session matches (less what refunds took back)
    redeemed: int  # given through their energy pools' redemptions
    balance: int  # topped_up - matched - redeemed: below 0, what they still owe


@closed
class Funds(TypedDict):
    sponsor_id: str
    currencies: list[FundsIn]
    top_ups: list[TopUpOut]


def top_up_json(t: TopUp) -> TopUpOut:
    return {
        "id": t.id,
        "sponsor_id": t.sponsor_id,
        "amount": t.amount,
        "currency": t.currency,
        "status": t.status,
        "idempotency_key": t.idempotency_key,
        "created_at": rfc3339(t.created_at),
        "paid_at": rfc3339(t.paid_at),
    }
