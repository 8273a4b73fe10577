"""Events of an order's sale, as they travel the bus.

A sale enters a room's and its farmer's totals when it settles (`order_paid`) and leaves
them when a settled order is refunded (`refund`): the fold treats one as the other's
opposite, so both have one shape. Each topic gets the fields it may see.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from commerce.orders.models import Order
from core.events import Event, Topical


@dataclass(frozen=True, slots=True, kw_only=True)
class Sale(Event):
    order_id: str
    session_id: str
    listing_id: str
    quantity: int
    gross: int
    pledge: int
    currency: str
    at: str | None
    display_name: str | None = None  # the room: the buyer, as shown to viewers
    fee: int | None = None  # the farmer: the platform's fee, their share, the postage
    farmer_amount: int | None = None
    shipping_fee: int | None = None
    status: str | None = None  # the buyer (`me`): the order's status now


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPaid(Sale):
    type: ClassVar[str] = "order_paid"


@dataclass(frozen=True, slots=True, kw_only=True)
class Refund(Sale):
    type: ClassVar[str] = "refund"


def sale_rows(
    kind: type[Sale], order: Order, at: str | None, display_name: str | None = None
) -> list[Topical]:
    """The sale's event for its room, its farmer and its buyer."""
    sale = kind(
        order_id=order.id,
        session_id=order.session_id,
        listing_id=order.listing_id,
        quantity=order.quantity,
        gross=order.total,
        pledge=order.pledge_amount,
        currency=order.currency,
        at=at,
    )
    return [
        (f"session:{order.session_id}", replace(sale, display_name=display_name)),
        (
            f"farmer:{order.farmer_id}",
            replace(
                sale,
                display_name=display_name,
                fee=order.fee_amount,
                farmer_amount=order.farmer_amount,
                shipping_fee=order.shipping_fee or None,
            ),
        ),
        (f"me:{order.buyer_id}", replace(sale, display_name=display_name, status=order.status)),
    ]


def buyer_row(kind: type[Sale], order: Order, at: str | None) -> Topical:
    """The event for the buyer alone (a refund before settlement: no totals counted it)."""
    return sale_rows(kind, order, at)[2]
