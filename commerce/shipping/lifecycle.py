"""A shipment's states, the moves between them, and the only code that changes its status.

    packing ──▶ packed ──▶ shipped ──▶ delivered ──▶ completed
       │  └───────────────────▲  └──────────────────────▲ (the buyer confirms receipt)
       │          │           │            │
       ├──────────┴───────────┴────────────┴──▶ failed     (refused, lost, returned:
       │          │                                          its orders are refunded)
       └──────────┴──▶ cancelled  (every order in it was refunded before it left)

`packing` is the box a session's sales from one farmer to one buyer's address join as
they settle. The farmer moves it to packed, shipped (with courier and tracking number) and
delivered; it completes `PANEN_COMPLETE_AFTER_S` after delivery, or when its buyer confirms
receipt. Completion is when its orders complete: the farmer may be paid their share and
the charity may spend the pledge. Every move writes a row of the shipment's history; the
caller holds the shipment's row lock (docs/architecture.md, "Lock order").
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from commerce.shipping.models import Shipment, ShipmentStatusChange
from core.lifecycle import Lifecycle


class ShipmentStatus(StrEnum):
    PACKING = "packing"  # paid orders are joining it; the farmer packs it
    PACKED = "packed"  # the box is ready; later sales go in the next box
    SHIPPED = "shipped"  # with a courier, under a tracking number
    DELIVERED = "delivered"  # the courier handed it over; completion follows
    COMPLETED = "completed"  # its orders are complete: money follows
    FAILED = "failed"  # not delivered (refused, lost, returned): its orders are refunded
    CANCELLED = "cancelled"  # every order in it was refunded before it shipped


SHIPMENT = Lifecycle(
    "shipment",
    {
        ShipmentStatus.PACKING: (
            ShipmentStatus.PACKED,
            ShipmentStatus.SHIPPED,
            ShipmentStatus.FAILED,
            ShipmentStatus.CANCELLED,
        ),
        ShipmentStatus.PACKED: (
            ShipmentStatus.SHIPPED,
            ShipmentStatus.FAILED,
            ShipmentStatus.CANCELLED,
        ),
        ShipmentStatus.SHIPPED: (
            ShipmentStatus.DELIVERED,
            ShipmentStatus.COMPLETED,
            ShipmentStatus.FAILED,
        ),
        ShipmentStatus.DELIVERED: (ShipmentStatus.COMPLETED, ShipmentStatus.FAILED),
        ShipmentStatus.COMPLETED: (),
        ShipmentStatus.FAILED: (),
        ShipmentStatus.CANCELLED: (),
    },
)

# Whose hands a move is in.
BY_FARMER = frozenset(
    {
        ShipmentStatus.PACKED,
        ShipmentStatus.SHIPPED,
        ShipmentStatus.DELIVERED,
        ShipmentStatus.FAILED,
    }
)
BY_BUYER = frozenset({ShipmentStatus.COMPLETED})  # "I received it"


def _stamp(to: ShipmentStatus) -> str | None:
    return {
        ShipmentStatus.PACKED: "packed_at",
        ShipmentStatus.SHIPPED: "shipped_at",
        ShipmentStatus.DELIVERED: "delivered_at",
    }.get(to, "closed_at" if to in SHIPMENT.final else None)


def move(
    s: AsyncSession,
    shipment: Shipment,
    to: ShipmentStatus,
    at: datetime,
    by: str | None,
    note: str | None = None,
) -> None:
    """Move one locked shipment; 409 `invalid_transition` if its lifecycle does not allow it."""
    SHIPMENT.check(shipment.status, to)
    shipment.status = to
    if (column := _stamp(to)) is not None:
        setattr(shipment, column, at)
    s.add(ShipmentStatusChange(shipment_id=shipment.id, status=to, note=note, by=by, at=at))


def opened(s: AsyncSession, shipment_id: str, at: datetime) -> None:
    """The first line of a new box's history (the box itself is inserted in bulk)."""
    s.add(ShipmentStatusChange(shipment_id=shipment_id, status=ShipmentStatus.PACKING, at=at))


def note(s: AsyncSession, shipment: Shipment, at: datetime, by: str | None, text_: str) -> None:
    """A line in the shipment's history that changes nothing."""
    s.add(
        ShipmentStatusChange(
            shipment_id=shipment.id, status=shipment.status, note=text_, by=by, at=at
        )
    )
