"""A gift's states and the only code that changes them.

    pending ──▶ paid
       ├──▶ failed       its payment failed
       └──▶ cancelled    (kept for gifts closed before payment)

Its payment has its own lifecycle (`commerce.payments.lifecycle`); a gift becomes `paid`
in the transaction that moves its payment to `succeeded`, and the caller holds the gift's
row lock (before the payment's: docs/architecture.md).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from core.lifecycle import Lifecycle
from donations.gifts.models import Donation


class GiftStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    CANCELLED = "cancelled"


GIFT = Lifecycle(
    "donation",
    {
        GiftStatus.PENDING: (GiftStatus.PAID, GiftStatus.FAILED, GiftStatus.CANCELLED),
        GiftStatus.PAID: (),
        GiftStatus.FAILED: (),
        GiftStatus.CANCELLED: (),
    },
)


def move(gift: Donation, to: GiftStatus, at: datetime) -> None:
    GIFT.check(gift.status, to)
    gift.status = to
    if to is GiftStatus.PAID:
        gift.paid_at = at
