"""Where a higher package joins commerce's money path without commerce importing it.

Layers point one way (donations -> commerce), yet a settled pledge must reach the charity's
books and the transparency log in the same transaction that settles the order, and a
donation's payment arrives through the same provider webhook as an order's. So donations
registers here at import time, and commerce calls whatever is registered:

- `on_pledges(listener)`: called inside the settlement (or refund) transaction with the
  pledges that moved; returns outbox rows to add in that same transaction. It may raise
  ApiError to refuse a reversal (the refund then changes nothing).
- `on_orders(listener)`: called inside the settlement (or refund) transaction with every
  order settled (or a settled order refunded), pledge or not; returns outbox rows.
- `own_payments(prefix, owner)`: payments whose id starts with `prefix_` belong to `owner`,
  which applies their webhooks and sandbox decisions itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from commerce.payments.providers import WebhookEvent
    from core.auth import Principal
    from core.services import Services


@dataclass(frozen=True, slots=True)
class PledgeMovement:
    kind: str  # "pledge" (a settled order's pledge) or "pledge_reversal" (its refund)
    order_id: str
    session_id: str
    charity_id: str
    buyer_id: str
    amount: int
    currency: str
    at: datetime


OutboxRows = list[tuple[str, dict[str, Any]]]
PledgeListener = Callable[[AsyncSession, Sequence[PledgeMovement]], Awaitable[OutboxRows]]

_pledge_listeners: list[PledgeListener] = []


def on_pledges(listener: PledgeListener) -> None:
    if listener not in _pledge_listeners:
        _pledge_listeners.append(listener)


async def pledges_moved(s: AsyncSession, movements: Sequence[PledgeMovement]) -> OutboxRows:
    rows: OutboxRows = []
    if movements:
        for listener in _pledge_listeners:
            rows += await listener(s, movements)
    return rows


@dataclass(frozen=True, slots=True)
class OrderMovement:
    kind: str  # "settled" or "refunded" (a settled order's refund)
    order_id: str
    session_id: str
    buyer_id: str
    total: int
    currency: str
    at: datetime


OrderListener = Callable[[AsyncSession, Sequence[OrderMovement]], Awaitable[OutboxRows]]

_order_listeners: list[OrderListener] = []


def on_orders(listener: OrderListener) -> None:
    if listener not in _order_listeners:
        _order_listeners.append(listener)


async def orders_moved(s: AsyncSession, movements: Sequence[OrderMovement]) -> OutboxRows:
    rows: OutboxRows = []
    if movements:
        for listener in _order_listeners:
            rows += await listener(s, movements)
    return rows


class PaymentOwner(Protocol):
    async def apply_webhook(
        self, services: Services, provider: str, event: WebhookEvent
    ) -> dict[str, Any]: ...

    async def sandbox_decide(
        self, services: Services, principal: Principal, payment_id: str, succeeded: bool
    ) -> dict[str, Any]: ...


_payment_owners: dict[str, PaymentOwner] = {}


def own_payments(prefix: str, owner: PaymentOwner) -> None:
    _payment_owners[prefix] = owner


def payment_owner(payment_id: str) -> PaymentOwner | None:
    prefix, sep, _ = payment_id.partition("_")
    return _payment_owners.get(prefix) if sep else None
