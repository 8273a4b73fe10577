"""HTTP: sessions, their listings, their lifecycle and their rooms' chat rules."""

from __future__ import annotations

import logging

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from commerce.catalog.models import Product
from commerce.charities.models import Campaign, Charity
from commerce.outbox import service as outbox
from commerce.sessions import lifecycle, offers
from commerce.sessions.events import ChatRulesChanged, SessionMoved
from commerce.sessions.lifecycle import SESSION, SessionStatus
from commerce.sessions.models import ChatBan, Listing, LiveSession
from commerce.sessions.schemas import (
    BanBody,
    BanList,
    BanOut,
    ChatRulesBody,
    ChatRulesOut,
    CreateListing,
    CreateSession,
    ListingOut,
    SessionList,
    SessionOut,
    Unbanned,
    ban_json,
    chat_rules_json,
    listing_json,
    pinned_message_json,
    session_json,
)
from commerce.sessions.service import (
    blocked_word_problem,
    chat_words,
    forget_rules,
    load_session,
    lock_for_host,
    require_host,
)
from commerce.stock import service as inventory
from core.auth import Role
from core.clock import rfc3339, utcnow
from core.errors import bad_request, conflict, not_found
from core.http import ANYONE, LIMIT, Api, Ctx, Query, json, roles
from core.ids import new_id
from core.models import User
from core.redis import UNREACHABLE

log = logging.getLogger("panen.sessions")

api = Api()


@api.post(
    "/api/sessions",
    roles(Role.HOST, Role.ADMIN),
    body=CreateSession,
    status=201,
    response=SessionOut,
)
async def create_session(ctx: Ctx) -> Response:
    body = await ctx.body(CreateSession)
    async with ctx.services.db.transaction() as s:
        if await s.get(Charity, body.charity_id) is None:
            raise not_found("charity", body.charity_id)
        if body.campaign_id is not None:
            campaign = await s.get(Campaign, body.campaign_id)
            if campaign is None:
                raise not_found("campaign", body.campaign_id)
            if campaign.charity_id != body.charity_id:
                raise bad_request(
                    "campaign_mismatch", "the campaign is not this charity's", "campaign_id"
                )
            if campaign.currency != body.currency:
                raise bad_request(
                    "currency_mismatch", f"the campaign counts in {campaign.currency}", "currency"
                )
        live = LiveSession(
            id=new_id("ses"),
            host_id=ctx.user.user_id,
            status=SessionStatus.SCHEDULED,
            **body.model_dump(),
        )
        s.add(live)
    return json(session_json(live), 201)


@api.get(
    "/api/sessions",
    ANYONE,
    query=(Query("status", choices=SESSION.states), Query("host_id"), LIMIT),
    response=SessionList,
)
async def list_sessions(ctx: Ctx) -> Response:
    status = ctx.query("status")
    if status is not None and status not in SESSION.states:
        raise bad_request(
            "invalid_field", f"status must be one of {', '.join(SESSION.states)}", "status"
        )
    limit = ctx.query_int("limit")
    query = select(LiveSession).order_by(LiveSession.id.desc()).limit(limit)
    if status is not None:
        query = query.where(LiveSession.status == status)
    host_id = ctx.query("host_id")
    if host_id is not None:  # a host's own sessions, for their list of shows
        query = query.where(LiveSession.host_id == host_id)
    async with ctx.services.db.lagging() as s:
        rows = (await s.execute(query)).scalars().all()
    return json({"sessions": [session_json(r) for r in rows]})


@api.post(
    "/api/sessions/{session_id}/listings",
    roles(Role.HOST, Role.ADMIN),
    body=CreateListing,
    status=201,
    response=ListingOut,
)
async def create_listing(ctx: Ctx) -> Response:
    live = await load_session(ctx.services.db, ctx.path("session_id"))
    require_host(ctx.user, live)
    body = await ctx.body(CreateListing)
    if body.pledge_bps and body.pledge_per_unit:
        raise bad_request(
            "invalid_field", "give pledge_bps or pledge_per_unit, not both", "pledge_per_unit"
        )
    if body.pledge_per_unit > body.price:
        raise bad_request(
            "invalid_field", "the pledge per unit cannot exceed the price", "pledge_per_unit"
        )
    if live.status == SessionStatus.ENDED:
        raise conflict("session_ended", "this session has ended")
    async with ctx.services.db.transaction() as s:
        product = await s.get(Product, body.product_id)
        if product is None:
            raise not_found("product", body.product_id)
        if product.currency != live.currency:
            raise bad_request(
                "currency_mismatch",
                f"the product is priced in {product.currency}, the session in {live.currency}",
                "product_id",
            )
        listing = Listing(id=new_id("lst"), session_id=live.id, **body.model_dump())
        s.add(listing)
        try:
            await s.flush()
        except IntegrityError:
            raise conflict(
                "already_listed",
                "this product is already listed in this session",
                field="product_id",
            ) from None
    return json(listing_json(listing, product), 201)


async def _transition(ctx: Ctx, to: SessionStatus) -> Response:
    session_id = ctx.path("session_id")
    async with ctx.services.db.transaction() as s:
        live = await lock_for_host(s, ctx.user, session_id, open_only=False)
        now = utcnow()
        if lifecycle.move(live, to, now):  # every viewer's room hears it (a repeat: nothing)
            moved = SessionMoved(status=live.status, at=rfc3339(now))
            await outbox.add(s, [(f"session:{session_id}", moved)])
    await outbox.deliver(ctx.services)
    if to is SessionStatus.ENDED:
        # Before answering, where every reservation looks: no process takes another order.
        # (Redis away: no process can reserve anyway, and their caches expire in a second.)
        try:
            await inventory.session_ended(ctx.services, session_id)
        except UNREACHABLE:
            log.warning("session %s ended; its counters were not told", session_id)
        offers.forget(session_id)
    return json(session_json(live))


@api.post("/api/sessions/{session_id}/start", roles(Role.HOST, Role.ADMIN), response=SessionOut)
async def start_session(ctx: Ctx) -> Response:
    return await _transition(ctx, SessionStatus.LIVE)


@api.post("/api/sessions/{session_id}/end", roles(Role.HOST, Role.ADMIN), response=SessionOut)
async def end_session(ctx: Ctx) -> Response:
    return await _transition(ctx, SessionStatus.ENDED)


@api.get(
    "/api/sessions/{session_id}/chat-rules", roles(Role.HOST, Role.ADMIN), response=ChatRulesOut
)
async def get_chat_rules(ctx: Ctx) -> Response:
    """The room's chat rules, blocked words included (the room sees only the slow mode and
    the pinned message: a list of blocked words would teach how to get around it)."""
    live = await load_session(ctx.services.db, ctx.path("session_id"))
    require_host(ctx.user, live)
    return json(chat_rules_json(live))


@api.route(
    "PUT",
    "/api/sessions/{session_id}/chat-rules",
    roles(Role.HOST, Role.ADMIN),
    body=ChatRulesBody,
    response=ChatRulesOut,
)
async def put_chat_rules(ctx: Ctx) -> Response:
    """Slow mode, blocked words and the pinned message; a field left out stays as it is."""
    session_id = ctx.path("session_id")
    body = await ctx.body(ChatRulesBody)
    given = body.model_fields_set
    async with ctx.services.db.transaction() as s:
        live = await lock_for_host(s, ctx.user, session_id)
        before = (live.slow_mode_s, live.pinned_message)
        if "slow_mode_s" in given:
            live.slow_mode_s = body.slow_mode_s
        if "blocked_words" in given:
            kept: dict[str, str] = {}  # once each, as matching sees it ("JUDI" is "judi")
            for i, word in enumerate(body.blocked_words):
                problem = blocked_word_problem(word)
                if problem is not None:
                    raise bad_request(
                        "invalid_field", f"blocked_words.{i}: {problem}", f"blocked_words.{i}"
                    )
                kept.setdefault(chat_words(word), word)
            live.blocked_words = sorted(kept.values(), key=str.casefold)
        if "pinned_message" in given and body.pinned_message != live.pinned_message:
            live.pinned_message = body.pinned_message
            live.pinned_message_at = utcnow() if body.pinned_message is not None else None
        if (live.slow_mode_s, live.pinned_message) != before:  # what the room shows moved
            changed = ChatRulesChanged(
                slow_mode_s=live.slow_mode_s,
                pinned_message=dict(pinned_message_json(live) or {}) or None,
                at=rfc3339(utcnow()),
            )
            await outbox.add(s, [(f"session:{session_id}", changed)])
        out = chat_rules_json(live)
    await forget_rules(ctx.services, [session_id])
    await outbox.deliver(ctx.services)
    return json(out)


async def _rooms_of(ctx: Ctx, host_id: str) -> list[str]:
    """Every room of the host's, whose cached rules a ban changes (an ended room still
    has a chat)."""
    async with ctx.services.db.reader() as s:
        ids = await s.execute(select(LiveSession.id).where(LiveSession.host_id == host_id))
        return list(ids.scalars().all())


@api.get("/api/me/bans", roles(Role.HOST, Role.ADMIN), response=BanList)
async def list_bans(ctx: Ctx) -> Response:
    """The viewers the caller has banned from the chat of all their rooms, newest first."""
    async with ctx.services.db.reader() as s:
        rows = await s.execute(
            select(ChatBan)
            .where(ChatBan.host_id == ctx.user.user_id)
            .order_by(ChatBan.created_at.desc(), ChatBan.user_id)
        )
        bans = rows.scalars().all()
    return json({"bans": [ban_json(b) for b in bans]})


@api.post("/api/me/bans", roles(Role.HOST, Role.ADMIN), body=BanBody, status=201, response=BanOut)
async def ban(ctx: Ctx) -> Response:
    """Ban a viewer from the chat of every room of the caller's, this one and the next,
    until unbanned; banning again changes nothing."""
    body = await ctx.body(BanBody)
    host_id = ctx.user.user_id
    if body.user_id == host_id:
        raise bad_request("invalid_field", "user_id: a host cannot ban themselves", "user_id")
    async with ctx.services.db.transaction() as s:
        user = await s.get(User, body.user_id)
        if user is None:
            raise not_found("user", body.user_id)
        if body.session_id is not None:
            room = await s.get(LiveSession, body.session_id)
            if room is None or room.host_id != host_id:
                raise bad_request(
                    "invalid_field", "session_id: not one of your sessions", "session_id"
                )
        await s.execute(
            insert(ChatBan)
            .values(
                host_id=host_id,
                user_id=user.id,
                display_name=user.display_name,
                session_id=body.session_id,
                reason=body.reason,
            )
            .on_conflict_do_nothing()
        )
        banned = await s.get(ChatBan, (host_id, user.id), populate_existing=True)
        assert banned is not None
        out = ban_json(banned)
    await forget_rules(ctx.services, await _rooms_of(ctx, host_id))
    return json(out, 201)


@api.route("DELETE", "/api/me/bans/{user_id}", roles(Role.HOST, Role.ADMIN), response=Unbanned)
async def unban(ctx: Ctx) -> Response:
    """The viewer may chat in the caller's rooms again; unbanning twice changes nothing
    (404 for no such user)."""
    user_id = ctx.path("user_id")
    async with ctx.services.db.transaction() as s:
        if await s.get(User, user_id) is None:
            raise not_found("user", user_id)
        await s.execute(
            delete(ChatBan).where(ChatBan.host_id == ctx.user.user_id, ChatBan.user_id == user_id)
        )
    await forget_rules(ctx.services, await _rooms_of(ctx, ctx.user.user_id))
    return json({"user_id": user_id, "status": "unbanned"})
