"""An order's states, the moves between them, and the only code that changes its status.

    reserved ──paid──▶ paid ──settled──▶ settled ──delivered──▶ completed
       │                 │                  │
       ├─▶ expired       └──▶ refunded ◀────┘
       └─▶ cancelled

A settled order waits in its shipment (`commerce/shipping`): it completes when its box is
delivered and its buyer's window to complain has passed, and is refunded if the box never
arrives. Completed is final: the farmer is paid, the charity may spend the pledge.

Every move writes a row of the order's history in the same transaction. The caller holds
the order's row lock (see docs/architecture.md, "Lock order").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import String, any_, cast, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from commerce.orders.models import Order
from core.lifecycle import Lifecycle


class OrderStatus(StrEnum):
    RESERVED = "reserved"  # stock held, waiting for its payment
    PAID = "paid"  # the provider confirmed the payment; settlement is next
    SETTLED = "settled"  # the money is split in the ledger, the pledge is the charity's
    COMPLETED = "completed"  # delivered and kept: the farmer's share and the pledge are final
    EXPIRED = "expired"  # not paid in time
    CANCELLED = "cancelled"  # by its buyer, its host, or a failed payment, before payment
    REFUNDED = "refunded"  # after payment, by its host or an admin


ORDER = Lifecycle(
    "order",
    {
        OrderStatus.RESERVED: (OrderStatus.PAID, OrderStatus.EXPIRED, OrderStatus.CANCELLED),
        OrderStatus.PAID: (OrderStatus.SETTLED, OrderStatus.REFUNDED),
        OrderStatus.SETTLED: (OrderStatus.COMPLETED, OrderStatus.REFUNDED),
        OrderStatus.COMPLETED: (),
        OrderStatus.EXPIRED: (),
        OrderStatus.CANCELLED: (),
        OrderStatus.REFUNDED: (),
    },
)

# An order in one of these holds its units of stock (the counters are rebuilt from them).
HOLDS_STOCK = (
    OrderStatus.RESERVED,
    OrderStatus.PAID,
    OrderStatus.SETTLED,
    OrderStatus.COMPLETED,
)
# What a room's and a farmer's totals count: a sale enters them when it settles (the
# `order_paid` event is sent then) and leaves them when a settled order is refunded; a
# completed one stays (completing it sends no sale event).
COUNTED = (OrderStatus.SETTLED, OrderStatus.COMPLETED)


def _stamp(to: OrderStatus) -> str | None:
    """The column that records when an order reached `to`."""
    if to is OrderStatus.PAID:
        return "paid_at"
    if to is OrderStatus.SETTLED:
        return "settled_at"
    if to is OrderStatus.COMPLETED:
        return "completed_at"
    return "closed_at" if to in ORDER.final else None


_HISTORY = text(
    "INSERT INTO order_status_history (order_id, status, note, at)"
    " SELECT unnest(CAST(:ids AS varchar[])), :status, :note, :at"
)


async def move(
    s: AsyncSession, order: Order, to: OrderStatus, at: datetime, note: str | None = None
) -> None:
    """Move one locked order; 409 `invalid_transition` if its lifecycle does not allow it."""
    ORDER.check(order.status, to)
    order.status = to
    if (column := _stamp(to)) is not None:
        setattr(order, column, at)
    await s.execute(_HISTORY, {"ids": [order.id], "status": to, "note": note, "at": at})


async def move_many(
    s: AsyncSession,
    orders: Sequence[Order],
    current: OrderStatus,
    to: OrderStatus,
    at: datetime,
    note: str | None = None,
) -> None:
    """Move a batch of locked orders, all in `current`, in two statements."""
    if not orders:
        return
    ORDER.check(current, to)
    column = _stamp(to)
    stamp = {column: at} if column else {}
    ids = [o.id for o in orders]
    moved = await s.execute(
        update(Order)
        .where(Order.id == any_(cast(ids, ARRAY(String))), Order.status == current)
        .values(status=to, **stamp)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != len(ids):  # type: ignore[attr-defined]
        raise RuntimeError(f"{len(ids)} orders to move from {current}, not all were")
    for order in orders:  # what was written, without writing it again
        set_committed_value(order, "status", to)
        for name, value in stamp.items():
            set_committed_value(order, name, value)
    await s.execute(_HISTORY, {"ids": ids, "status": to, "note": note, "at": at})


async def note(s: AsyncSession, order: Order, at: datetime, text_: str) -> None:
    """A line in the order's history that changes nothing (a late payment refunded)."""
    await s.execute(_HISTORY, {"ids": [order.id], "status": order.status, "note": text_, "at": at})
