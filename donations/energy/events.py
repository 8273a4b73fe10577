"""Events of energy points: a room's redemptions, and a user's own balance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from core.events import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class Energy(Event):
    """Points a viewer redeemed into a sponsor's pool for this room's charity."""

    type: ClassVar[str] = "energy"
    session_id: str
    redemption_id: str
    points: int
    amount: int
    currency: str
    display_name: str
    sponsor_name: str
    at: str | None
    unit_name: str | None = None
    unit_cost: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Points(Event):
    """A change of the user's points (`me`)."""

    type: ClassVar[str] = "points"
    kind: str
    delta: int
    balance: int
    redeemable: int
    at: str | None
