"""Request bodies and JSON of orders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from commerce.orders.lifecycle import OrderStatus
from commerce.orders.models import Order, OrderStatusChange
from commerce.payments.lifecycle import PaymentStatus
from commerce.payments.models import Payment
from core.clock import rfc3339
from core.fields import Id
from core.http import Body, frame_body
from core.shapes import NotRequired, TypedDict, closed

MAX_QUANTITY = 1000


class PlaceOrder(Body):
    listing_id: Id
    quantity: Annotated[int, Field(gt=0, le=MAX_QUANTITY)]
    # Where to ship it: one of the buyer's addresses; left out, their default.
    address_id: Id | None = None


def order_frame(fields: Mapping[str, Any]) -> tuple[PlaceOrder, str]:
    """The socket's `order` frame, checked exactly as `POST /api/orders` is."""
    return frame_body(PlaceOrder, fields)


@closed
class OrderPayment(TypedDict):
    id: str
    provider: str
    status: str
    amount: int  # what the payer pays: the order's total and its shipping fee
    method: str | None  # chosen at checkout; once paid, as the provider says it was paid
    checkout_url: str | None  # the gateway's page to pay on, once a method is chosen


@closed
class StatusChange(TypedDict):
    status: str
    at: str | None
    note: str | None


@closed
class OrderOut(TypedDict):
    id: str
    session_id: str
    listing_id: str
    deal_id: str | None
    buyer_id: str
    farmer_id: str
    charity_id: str
    quantity: int
    unit_price: int
    total: int
    pledge_amount: int
    fee_amount: int
    farmer_amount: int
    currency: str
    address_id: str | None
    weight_g: int
    shipping_fee: int  # what this order adds to its box's shipping; outside `total`
    shipment_id: str | None  # its box, once the sale settled
    status: str
    expires_at: str | None
    paid_at: str | None
    settled_at: str | None
    completed_at: str | None
    created_at: str | None
    payment: OrderPayment | None
    history: NotRequired[list[StatusChange]]


@closed
class OrderReply(TypedDict):
    order: OrderOut


@closed
class OrderPage(TypedDict):
    orders: list[OrderOut]
    next_before: str | None


@closed
class ProductSales(TypedDict):
    product_id: str
    name: str
    units_sold: int
    gross: int
    pledged: int


@closed
class SessionSales(TypedDict):
    session_id: str
    title: str
    status: str
    units_sold: int
    gross: int
    pledged: int


@closed
class SalesPoint(TypedDict):
    at: str | None
    gross: int


@closed
class FarmerTotals(TypedDict):
    farmer_id: str
    units_sold: int
    gross: int
    pledged: int
    fees: int
    payout_pending: int  # owed by the ledger, not yet in a payout
    payout_in_transit: int  # in payouts on their way to the farmer's bank
    payout_settled: int  # in payouts the bank completed
    by_product: list[ProductSales]
    series: list[SalesPoint]
    by_session: list[SessionSales]


def fingerprint(listing_id: str, quantity: int, address_id: str | None) -> str:
    """What makes a resend the same order: the same listing, quantity and address."""
    return f"{listing_id}:{quantity}:{address_id or ''}"


def same_order(order: Order | OrderOut, fp: str) -> bool:
    """Whether an order is what `fp` asked for; an order placed to the default address is
    what a request naming no address asked for."""
    if isinstance(order, Order):
        listing, quantity, address = order.listing_id, order.quantity, order.address_id
    else:
        listing, quantity, address = order["listing_id"], order["quantity"], order["address_id"]
    return fp in (fingerprint(listing, quantity, address), fingerprint(listing, quantity, None))


@dataclass(frozen=True, slots=True, kw_only=True)
class Reserved:
    """An order just placed, as `order_json` reads it: the answer to a buy is rendered
    from this, not from an ORM `Order` the request never saves (building one, with its
    attribute instrumentation, cost a third of placing an order's Python time)."""

    id: str
    session_id: str
    listing_id: str
    deal_id: str | None
    buyer_id: str
    farmer_id: str
    charity_id: str
    quantity: int
    unit_price: int
    total: int
    pledge_amount: int
    fee_amount: int
    farmer_amount: int
    currency: str
    address_id: str | None
    weight_g: int
    shipping_fee: int
    expires_at: datetime
    created_at: datetime
    status: str = OrderStatus.RESERVED
    shipment_id: None = None
    paid_at: None = None
    settled_at: None = None
    completed_at: None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """A reserved order's payment, before the payer chose a method."""

    id: str
    provider: str
    amount: int
    status: str = PaymentStatus.PENDING
    method: None = None
    checkout_url: None = None


def order_json(
    order: Order | Reserved,
    payment: Payment | Pending | None,
    history: list[OrderStatusChange] | None = None,
) -> OrderOut:
    out: OrderOut = {
        "id": order.id,
        "session_id": order.session_id,
        "listing_id": order.listing_id,
        "deal_id": order.deal_id,
        "buyer_id": order.buyer_id,
        "farmer_id": order.farmer_id,
        "charity_id": order.charity_id,
        "quantity": order.quantity,
        "unit_price": order.unit_price,
        "total": order.total,
        "pledge_amount": order.pledge_amount,
        "fee_amount": order.fee_amount,
        "farmer_amount": order.farmer_amount,
        "currency": order.currency,
        "address_id": order.address_id,
        "weight_g": order.weight_g,
        "shipping_fee": order.shipping_fee,
        "shipment_id": order.shipment_id,
        "status": order.status,
        "expires_at": rfc3339(order.expires_at),
        "paid_at": rfc3339(order.paid_at),
        "settled_at": rfc3339(order.settled_at),
        "completed_at": rfc3339(order.completed_at),
        "created_at": rfc3339(order.created_at),
        "payment": None
        if payment is None
        else {
            "id": payment.id,
            "provider": payment.provider,
            "status": payment.status,
            "amount": payment.amount,
            "method": payment.method,
            "checkout_url": payment.checkout_url,
        },
    }
    if history is not None:
        out["history"] = [
            {"status": h.status, "at": rfc3339(h.at), "note": h.note} for h in history
        ]
    return out
