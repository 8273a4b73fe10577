"""A payout's states, the moves between them, and the only code that changes its status.

    pending ──▶ submitted ──▶ completed
       │            │
       └──▶ failed ◀┘

`pending`: the farmer's money has left their payable balance (in transit), the transfer is
not yet handed to the payout provider (a crash here is picked up by `payout_sweep`).
`submitted`: the provider has it (Iris's reference_no, or a bank file an operator
uploads). A failure puts the money back in the farmer's balance.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from commerce.payouts.models import Payout
from core.lifecycle import Lifecycle


class PayoutStatus(StrEnum):
    PENDING = "pending"  # out of the farmer's balance, not yet with the provider
    SUBMITTED = "submitted"  # with the provider (or in a bank file)
    COMPLETED = "completed"  # the farmer has the money
    FAILED = "failed"  # it did not go through: the money is back in their balance


PAYOUT = Lifecycle(
    "payout",
    {
        PayoutStatus.PENDING: (PayoutStatus.SUBMITTED, PayoutStatus.FAILED),
        PayoutStatus.SUBMITTED: (PayoutStatus.COMPLETED, PayoutStatus.FAILED),
        PayoutStatus.COMPLETED: (),
        PayoutStatus.FAILED: (),
    },
)


def move(payout: Payout, to: PayoutStatus, at: datetime) -> None:
    """Move one locked payout; 409 `invalid_transition` if its lifecycle does not allow it."""
    PAYOUT.check(payout.status, to)
    payout.status = to
    payout.updated_at = at


def start(payout: Payout) -> None:
    """A new payout starts `pending`."""
    payout.status = PayoutStatus.PENDING
