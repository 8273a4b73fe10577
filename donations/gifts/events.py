"""The event of a paid gift, for its room and its giver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from core.events import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class Donation(Event):
    type: ClassVar[str] = "donation"
    donation_id: str
    amount: int
    currency: str
    display_name: str  # as the giver chose to be shown
    charity_id: str
    entry_index: int  # its entry in the transparency log
    at: str | None
    message: str | None = None
    session_id: str | None = None  # the room's copy
    status: str | None = None  # the giver's copy (`me`)
