"""Events of a session itself: it went live or ended, for everyone in its room."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from core.events import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionMoved(Event):
    """The session's status changed: a room that sees `ended` stops selling at once."""

    type: ClassVar[str] = "session_status"
    status: str
    at: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRulesChanged(Event):
    """The host changed the room's slow mode or its pinned message (blocked words are the
    host's own: a room never hears them)."""

    type: ClassVar[str] = "chat_rules"
    slow_mode_s: int
    pinned_message: dict[str, Any] | None  # {text, at}
    at: str | None
