"""A payment's states, the moves between them, and the only code that changes its status.

    pending ──▶ succeeded ──▶ refunding ──▶ refunded
       │                        ▲
       ├──▶ failed ─────────────┤   money that arrives for an order or a gift that can
       └──▶ cancelled ──────────┘   no longer take it goes straight back

`refunding` means we owe the payer the money and have asked (or will ask) the provider to
return it; the call to the provider happens after the transaction commits, never inside it
(`commerce.payments.service.execute_refunds`, and a sweeper for any that a crash left).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import String, any_, cast, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.payments.models import Payment
from core.lifecycle import Lifecycle


class PaymentStatus(StrEnum):
    PENDING = "pending"  # opened with the provider, not paid yet
    SUCCEEDED = "succeeded"  # the provider confirmed the money
    FAILED = "failed"  # the provider said it failed
    CANCELLED = "cancelled"  # we closed it (order cancelled or expired) before it was paid
    REFUNDING = "refunding"  # the money goes back to the payer; the provider is being asked
    REFUNDED = "refunded"  # the provider returned it


PAYMENT = Lifecycle(
    "payment",
    {
        PaymentStatus.PENDING: (
            PaymentStatus.SUCCEEDED,
            PaymentStatus.FAILED,
            PaymentStatus.CANCELLED,
            PaymentStatus.REFUNDING,
        ),
        PaymentStatus.SUCCEEDED: (PaymentStatus.REFUNDING,),
        PaymentStatus.FAILED: (PaymentStatus.REFUNDING,),
        PaymentStatus.CANCELLED: (PaymentStatus.REFUNDING,),
        PaymentStatus.REFUNDING: (PaymentStatus.REFUNDED,),
        PaymentStatus.REFUNDED: (),
    },
)


def move(payment: Payment, to: PaymentStatus, at: datetime) -> None:
    """Move one locked payment; 409 `invalid_transition` if its lifecycle does not allow it."""
    PAYMENT.check(payment.status, to)
    payment.status = to
    payment.updated_at = at


async def move_many(
    s: AsyncSession,
    ids: Sequence[str],
    current: PaymentStatus,
    to: PaymentStatus,
    at: datetime,
) -> list[str]:
    """Move those of these payments that are in `current` (their orders are locked);
    returns the ids moved."""
    PAYMENT.check(current, to)
    if not ids:
        return []
    moved = await s.execute(
        update(Payment)
        .where(Payment.id == any_(cast(list(ids), ARRAY(String))), Payment.status == current)
        .values(status=to, updated_at=at)
        .returning(Payment.id)
        .execution_options(synchronize_session=False)
    )
    return list(moved.scalars())
