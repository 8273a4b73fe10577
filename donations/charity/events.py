"""Events of a room's charity side: sponsor matches and goal milestones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from core.events import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class Match(Event):
    """A sponsor added to a gift or pledge (negative when a refund takes it back)."""

    type: ClassVar[str] = "match"
    session_id: str
    match_id: str
    amount: int
    currency: str
    sponsor_name: str
    remaining: int  # of the sponsor's cap
    at: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Milestone(Event):
    type: ClassVar[str] = "milestone"
    session_id: str
    campaign_id: str
    unit_name: str
    funded_units: int
    goal_units: int
    at: str | None
