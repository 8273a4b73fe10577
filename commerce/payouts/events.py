"""Events of payouts, for the farmer's own topic: their dashboard's payout numbers move
when a payout is made, completed or fails, as the totals read from the database would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from commerce.payouts.lifecycle import PayoutStatus
from commerce.payouts.models import Payout
from core.clock import rfc3339, utcnow
from core.events import Event, Topical


@dataclass(frozen=True, slots=True, kw_only=True)
class PayoutMoved(Event):
    """A payout moved the farmer's money between what they are owed, what is on its way to
    their bank and what reached it: each field is that number's change."""

    type: ClassVar[str] = "payout"
    payout_id: str
    amount: int
    currency: str
    status: str
    owed: int  # payout_pending
    in_transit: int  # payout_in_transit
    paid_out: int  # payout_settled
    at: str | None


# How each status a payout reaches moves the three numbers (by its amount).
MOVES = {
    PayoutStatus.PENDING: (-1, 1, 0),  # out of the balance, on its way
    PayoutStatus.COMPLETED: (0, -1, 1),  # arrived
    PayoutStatus.FAILED: (1, -1, 0),  # back in the balance
}


def moved(payout: Payout) -> Topical:
    owed, in_transit, paid_out = MOVES[PayoutStatus(payout.status)]
    a = payout.amount
    return (
        f"farmer:{payout.farmer_id}",
        PayoutMoved(
            payout_id=payout.id,
            amount=a,
            currency=payout.currency,
            status=payout.status,
            owed=owed * a,
            in_transit=in_transit * a,
            paid_out=paid_out * a,
            at=rfc3339(utcnow()),
        ),
    )
