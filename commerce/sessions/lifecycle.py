"""A live session's states and the moves between them: scheduled ──▶ live ──▶ ended."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from commerce.sessions.models import LiveSession
from core.lifecycle import Lifecycle


class SessionStatus(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"  # takes orders and gifts
    ENDED = "ended"  # never reopens


SESSION = Lifecycle(
    "session",
    {
        SessionStatus.SCHEDULED: (SessionStatus.LIVE,),
        SessionStatus.LIVE: (SessionStatus.ENDED,),
        SessionStatus.ENDED: (),
    },
)


def move(live: LiveSession, to: SessionStatus, at: datetime) -> bool:
    """Move a locked session; repeating a move that already happened is harmless (False).
    Anything else the lifecycle does not allow is 409 `invalid_transition`."""
    if live.status == to:
        return False
    SESSION.check(live.status, to)
    live.status = to
    if to is SessionStatus.LIVE:
        live.started_at = at
    else:
        live.ended_at = at
    return True
