"""A top-up's states and the only code that changes them.

    pending ──▶ paid
       └──▶ failed       its payment failed (the gateway denied or expired it)

It becomes `paid` in the transaction that moves its payment to `succeeded`; the caller
holds the top-up's row lock, then the payment's (the lock order of docs/architecture.md).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from core.lifecycle import Lifecycle
from donations.sponsors.models import TopUp


class TopUpStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"


TOP_UP = Lifecycle(
    "top-up",
    {
        TopUpStatus.PENDING: (TopUpStatus.PAID, TopUpStatus.FAILED),
        TopUpStatus.PAID: (),
        TopUpStatus.FAILED: (),
    },
)


def move(top_up: TopUp, to: TopUpStatus, at: datetime) -> None:
    TOP_UP.check(top_up.status, to)
    top_up.status = to
    if to is TopUpStatus.PAID:
        top_up.paid_at = at
