"""`GET /api/sessions/{id}`: the session with its listings and the room's totals snapshot.

It lives here rather than in commerce because the totals are the room's (orders, the
charity's pledges, donations and matches, energy, viewers, likes): the folded state the
ticker keeps in Redis while the room is watched, or the same state rebuilt from
PostgreSQL when nobody is.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from commerce.sessions.schemas import SessionDetail
from commerce.sessions.service import load_session, session_detail
from core.http import ANYONE, Api, Ctx, json
from core.services import Services
from live import rooms
from live.history import TopicKeys
from live.ticker import COLD

api = Api()


async def room_totals(services: Services, session_id: str) -> dict[str, Any]:
    topic = f"session:{session_id}"
    raw = await services.redis.get(TopicKeys.of(services.keys, topic).state)
    if raw is not None and raw != COLD:
        state: rooms.State = orjson.loads(raw)
    else:
        state = await rooms.cold_state(services, topic)
        rooms.finish(state)
    totals: dict[str, Any] = state["totals"]
    return totals


@api.get("/api/sessions/{session_id}", ANYONE, response=SessionDetail)
async def get_session(ctx: Ctx) -> Response:
    live = await load_session(ctx.services.db, ctx.path("session_id"))
    detail = await session_detail(ctx.services.db, live)
    detail["totals"] = await room_totals(ctx.services, live.id)
    return json(detail)
