"""Events of what the host puts in front of viewers: the pinned product and flash deals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from core.events import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class Pinned(Event):
    type: ClassVar[str] = "pinned"
    listing: dict[str, Any]  # the listing's card, with `remaining`


@dataclass(frozen=True, slots=True, kw_only=True)
class DealAnnounced(Event):
    type: ClassVar[str] = "flash_deal"
    deal: dict[str, Any]  # price, stock, starts_at, ends_at, max_per_buyer
