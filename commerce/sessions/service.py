"""Reading sessions, who may act for one, and the rules of their rooms' chat."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from typing import cast

from redis.exceptions import RedisError
from sqlalchemy import select

from commerce.catalog.models import Product
from commerce.charities.models import Campaign, Charity
from commerce.sessions.models import ChatBan, Listing, LiveSession
from commerce.sessions.schemas import SessionDetail, listing_json, session_json
from core.auth import Principal
from core.db import Database
from core.errors import forbidden, not_found
from core.events import topic_key
from core.redis import Keys
from core.services import Services

log = logging.getLogger("panen.sessions")


async def load_session(db: Database, session_id: str) -> LiveSession:
    async with db.reader() as s:
        live = await s.get(LiveSession, session_id)
    if live is None:
        raise not_found("session", session_id)
    return live


def require_host(principal: Principal, live: LiveSession) -> None:
    if not (principal.is_admin or live.host_id == principal.user_id):
        raise forbidden("only this session's host may do this")


async def session_detail(db: Database, live: LiveSession) -> SessionDetail:
    async with db.reader() as s:
        rows = (
            await s.execute(
                select(Listing, Product)
                .join(Product, Product.id == Listing.product_id)
                .where(Listing.session_id == live.id)
                .order_by(Listing.id)
            )
        ).all()
        charity = await s.get(Charity, live.charity_id)
        campaign = await s.get(Campaign, live.campaign_id) if live.campaign_id else None
    # A cast: mypy will not build a TypedDict from another's ** with optional keys left
    # out; the tests check this shape against every answer.
    out = cast(
        SessionDetail,
        {
            **session_json(live),
            "listings": [listing_json(listing, product) for listing, product in rows],
            "charity": {"id": charity.id, "name": charity.name} if charity else None,
        },
    )
    if campaign is not None:
        out["campaign"] = {
            "id": campaign.id,
            "title": campaign.title,
            "unit_name": campaign.unit_name,
            "unit_cost": campaign.unit_cost,
            "goal_units": campaign.goal_units,
        }
    return out


# The chat rules a room's chat script reads, cached in Redis beside the room's other keys
# (one hash: `loaded`, `slow_ms`, `words`, and `ban:<user id>` per banned viewer). The
# database is the truth: a change deletes the cache and the next line loads it again; it
# also expires, so a change whose delete Redis missed holds within RULES_TTL_MS.
RULES_TTL_MS = 30_000
_WORD = re.compile(r"\w+")


def chat_words(text: str) -> str:
    """Text as the word filter compares it: compatibility-folded, case-folded, its words
    joined by single spaces (so "Jual-Beli!!" is "jual beli", and a blocked "beli" matches
    it, while "belimbing" does not)."""
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


def rules_key(keys: Keys, session_id: str) -> str:
    return topic_key(keys, f"session:{session_id}", "rules")


async def rules_fields(db: Database, session_id: str) -> dict[str, str] | None:
    """The cache's fields for a session, from the database; None for no such session."""
    async with db.reader() as s:
        live = await s.get(LiveSession, session_id)
        if live is None:
            return None
        banned = (
            (await s.execute(select(ChatBan.user_id).where(ChatBan.host_id == live.host_id)))
            .scalars()
            .all()
        )
    words = [w for w in (chat_words(word) for word in live.blocked_words) if w]
    fields = {"loaded": "1", "slow_ms": str(live.slow_mode_s * 1000), "words": "\n".join(words)}
    fields.update({f"ban:{user_id}": "1" for user_id in banned})
    return fields


async def forget_rules(services: Services, session_ids: Sequence[str]) -> None:
    """Drop the cached rules of these rooms (after the change committed): a Redis away is
    logged, not raised, and the cache's expiry then brings the change."""
    try:
        async with services.redis.pipeline(transaction=False) as pipe:
            for session_id in session_ids:  # one key a command: each room is its own slot
                pipe.delete(rules_key(services.keys, session_id))
            await pipe.execute()
    except (RedisError, OSError):
        log.warning("chat rules of %d rooms apply within %d ms", len(session_ids), RULES_TTL_MS)
