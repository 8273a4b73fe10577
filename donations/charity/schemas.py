"""Request bodies and JSON of sponsor matches."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from core.clock import rfc3339
from core.fields import Amount, Name
from core.http import Body as RequestBody
from donations.charity.models import Match


class CreateMatch(RequestBody):
    sponsor_name: Name
    # Up to 10x: a sponsor may well give more than the gift it matches.
    ratio_bps: Annotated[int, Field(gt=0, le=100_000)]
    cap: Amount


def match_json(m: Match) -> dict[str, Any]:
    return {
        "id": m.id,
        "session_id": m.session_id,
        "sponsor_id": m.sponsor_id,
        "sponsor_name": m.sponsor_name,
        "ratio_bps": m.ratio_bps,
        "cap": m.cap,
        "currency": m.currency,
        "matched": m.matched,
        "remaining": m.cap - m.matched,
        "created_at": rfc3339(m.created_at),
    }
