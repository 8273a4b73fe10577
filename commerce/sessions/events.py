"""Events of a session itself: it went live or ended, for everyone in its room."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from core.events import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionMoved(Event):
    """The session's status changed: a room that sees `ended` stops selling at once."""

    type: ClassVar[str] = "session_status"
    status: str
    at: str | None
