"""Events of gifts: a paid gift for its room and its giver, and the moderation of the
messages donors attach."""

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
    # Its entry in the transparency log: None only in the outbox row, until the sequencer
    # gives the entry its index; every event sent carries it.
    entry_index: int | None
    at: str | None
    message: str | None = None
    session_id: str | None = None  # the room's copy
    status: str | None = None  # the giver's copy (`me`)


@dataclass(frozen=True, slots=True, kw_only=True)
class DonationMessage(Event):
    """A donor's message the host approved, in a room that holds messages back."""

    type: ClassVar[str] = "donation_message"
    session_id: str
    donation_id: str
    display_name: str
    amount: int
    currency: str
    message: str
    at: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageHidden(Event):
    """The host hid a donor's message: pages drop it, and the room's replay forgets it."""

    type: ClassVar[str] = "message_hidden"
    session_id: str
    donation_id: str
