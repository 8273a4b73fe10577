"""`GET /api/sessions/{id}`: the session with its listings and the room's totals snapshot;
`GET /api/sessions/{id}/summary`: the show in numbers, for its host.

It lives here rather than in commerce because the totals are the room's (orders, the
charity's pledges, donations and matches, energy, viewers, likes): the folded state the
ticker keeps in Redis while the room is watched, or the same state rebuilt from
PostgreSQL when nobody is.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from commerce.orders import totals as order_totals
from commerce.sessions.schemas import SessionDetail
from commerce.sessions.service import load_session, require_host, session_detail
from core.auth import Role
from core.clock import rfc3339, utcnow
from core.http import ANYONE, Api, Ctx, json, roles
from core.services import Services
from core.shapes import NotRequired, TypedDict, closed
from donations.charity import totals as charity_totals
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


@closed
class ProductRecap(TypedDict):
    listing_id: str
    product_name: str
    unit: str
    orders: int
    units: int
    gross: int
    pledged: int


@closed
class BusiestMinute(TypedDict):
    at: str | None
    orders: int
    units: int


@closed
class DealRecap(TypedDict):
    deal_id: str
    product_name: str
    price: int
    stock: int
    units: int
    starts_at: str | None
    ends_at: str | None


@closed
class GiftRecap(TypedDict):
    donation_id: str
    display_name: str
    amount: int
    currency: str
    at: str | None


@closed
class SessionSummary(TypedDict):
    session_id: str
    title: str
    status: str
    started_at: str | None
    ended_at: str | None
    duration_s: int | None
    currency: str
    orders: int
    buyers: int
    units: int
    gross: int
    likes: int
    charity: dict[str, int]
    energy: dict[str, Any]
    goal: NotRequired[dict[str, Any]]
    gifts: int
    givers: int
    top_donors: list[dict[str, Any]]
    by_product: list[ProductRecap]
    busiest_minute: BusiestMinute | None
    deals: list[DealRecap]
    biggest_gifts: list[GiftRecap]


@api.get(
    "/api/sessions/{session_id}/summary", roles(Role.HOST, Role.ADMIN), response=SessionSummary
)
async def session_summary(ctx: Ctx) -> Response:
    """The show in numbers, for its host (during it too): what sold, what it raised, and its
    moments (the busiest minute, each flash deal, the biggest gifts)."""
    services = ctx.services
    live = await load_session(services.db, ctx.path("session_id"))
    require_host(ctx.user, live)
    totals = await room_totals(services, live.id)
    sales = await order_totals.session_recap(services.db, live.id)
    gifts = await charity_totals.session_gifts(services.db, live.id)
    duration = None
    if live.started_at is not None:
        duration = int(((live.ended_at or utcnow()) - live.started_at).total_seconds())
    out: SessionSummary = {
        "session_id": live.id,
        "title": live.title,
        "status": live.status,
        "started_at": rfc3339(live.started_at),
        "ended_at": rfc3339(live.ended_at),
        "duration_s": duration,
        "currency": live.currency,
        "orders": int(totals.get("orders") or 0),
        "buyers": sales["buyers"],
        "units": sum(p["units"] for p in sales["by_product"]),
        "gross": int(totals.get("gross") or 0),
        "likes": int(totals.get("likes") or 0),
        "charity": dict(totals.get("charity") or {}),
        "energy": dict(totals.get("energy") or {}),
        "gifts": gifts["gifts"],
        "givers": gifts["givers"],
        "top_donors": list(totals.get("top_donors") or []),
        "by_product": sales["by_product"],
        "busiest_minute": sales["busiest_minute"],
        "deals": sales["deals"],
        "biggest_gifts": gifts["biggest_gifts"],
    }
    if isinstance(totals.get("goal"), dict):
        out["goal"] = totals["goal"]
    return json(out)
