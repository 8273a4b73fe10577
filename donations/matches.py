"""Sponsor matches: a sponsor adds a ratio of each gift and pledge of a session, up to a cap."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import select
from starlette.responses import Response

from commerce.sessions import load_session
from core.auth import Role
from core.clock import rfc3339
from core.errors import conflict
from core.fields import Amount, Name
from core.http import ANYONE, Ctx, json, roles
from core.http import Body as RequestBody
from core.ids import new_id
from donations.models import Match
from donations.routes import api


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


@api.post("/api/sessions/{session_id}/matches", roles(Role.SPONSOR, Role.ADMIN))
async def create_match(ctx: Ctx) -> Response:
    live = await load_session(ctx.services.db, ctx.path("session_id"))
    body = await ctx.body(CreateMatch)
    if live.status == "ended":
        raise conflict("session_ended", "the session has ended", status=live.status)
    match = Match(
        id=new_id("mch"),
        session_id=live.id,
        sponsor_id=ctx.user.user_id,
        sponsor_name=body.sponsor_name,
        ratio_bps=body.ratio_bps,
        cap=body.cap,
        currency=live.currency,
        matched=0,
    )
    async with ctx.services.db.transaction() as s:
        s.add(match)
        await s.flush()
        await s.refresh(match)
    return json(match_json(match), 201)


@api.get("/api/sessions/{session_id}/matches", ANYONE)
async def list_matches(ctx: Ctx) -> Response:
    live = await load_session(ctx.services.db, ctx.path("session_id"))
    async with ctx.services.db.reader() as s:
        rows = (
            await s.execute(
                select(Match).where(Match.session_id == live.id).order_by(Match.created_at)
            )
        ).scalars()
        return json({"matches": [match_json(m) for m in rows]})
