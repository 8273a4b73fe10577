"""Events of payments, for the payer's own `me` topic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from core.events import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRefunded(Event):
    """Money the payer sent for something that could no longer take it (an order that was
    cancelled or had expired) is on its way back."""

    type: ClassVar[str] = "payment_refunded"
    payment_id: str
    amount: int
    currency: str
    reason: str
    status: str
    at: str | None
    order_id: str | None = None
