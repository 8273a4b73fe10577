"""Events of a shipment, for its buyer (`me`) and its farmer: each move of the box."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from commerce.shipping.models import Shipment
from core.clock import rfc3339
from core.events import Event, Topical


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipmentMoved(Event):
    type: ClassVar[str] = "shipment"
    shipment_id: str
    session_id: str
    status: str
    courier: str | None = None
    tracking_number: str | None = None
    reason: str | None = None
    order_ids: list[str]
    at: str | None


def moved(shipment: Shipment, order_ids: list[str], at: datetime) -> list[Topical]:
    event = ShipmentMoved(
        shipment_id=shipment.id,
        session_id=shipment.session_id,
        status=shipment.status,
        courier=shipment.courier,
        tracking_number=shipment.tracking_number,
        reason=shipment.failure_reason,
        order_ids=order_ids,
        at=rfc3339(at),
    )
    return [(f"me:{shipment.buyer_id}", event), (f"farmer:{shipment.farmer_id}", event)]
