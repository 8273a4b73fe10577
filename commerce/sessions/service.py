"""Reading sessions, who may act for one, and the rules of their rooms' chat."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from typing import cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.catalog.models import Product
from commerce.charities.models import Campaign, Charity
from commerce.sessions.lifecycle import SessionStatus
from commerce.sessions.models import ChatBan, Listing, LiveSession
from commerce.sessions.schemas import SessionDetail, listing_json, session_json
from core.auth import Principal
from core.db import Database
from core.errors import conflict, forbidden, not_found
from core.events import topic_key
from core.redis import UNREACHABLE, Keys
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


async def lock_for_host(
    s: AsyncSession, principal: Principal, session_id: str, *, open_only: bool = True
) -> LiveSession:
    """The session, locked in this transaction for a change its host (or an admin) makes:
    404 for none, 403 for anyone else, and, with `open_only`, 409 once it has ended."""
    live = await s.get(LiveSession, session_id, with_for_update=True)
    if live is None:
        raise not_found("session", session_id)
    require_host(principal, live)
    if open_only and live.status == SessionStatus.ENDED:
        raise conflict("session_ended", "this session has ended")
    return live


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
GENERATION_TTL_MS = 24 * 3600 * 1000  # far longer than any load takes
_WORD = re.compile(r"[^\W_]+")  # letters and digits (an underscore separates, as a space)
# What a blocked word may hold besides letters and digits: what separates words in a line.
_WORD_SEPARATORS = frozenset(" -'.’")
_INVISIBLE = frozenset({"Cf", "Mn", "Me"})  # zero-width and format characters, combining marks


def _plain(text: str) -> str:
    """Compatibility- and case-folded, with what does not show (a zero-width space, a soft
    hyphen, a combining mark) taken out, so it cannot split a word unseen."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(c for c in decomposed if unicodedata.category(c) not in _INVISIBLE)


def chat_words(text: str) -> str:
    """Text as the word filter compares it: folded (`_plain`), its letter-and-digit words
    joined by single spaces. So "Jual-Beli!!", "JUAL beli" and "ｊｕａｌ　ｂｅｌｉ" are all
    "jual beli"; a blocked "beli" matches them, while "belimbing" does not."""
    return " ".join(_WORD.findall(_plain(text)))


def blocked_word_problem(word: str) -> str | None:
    """Why a blocked word cannot be matched as written, or None. A symbol inside it would be
    dropped in matching ("c++" would block every "c"), so only letters, digits and what
    separates words (spaces, hyphens, apostrophes, dots) may be in one."""
    plain = _plain(word)
    if not _WORD.search(plain):
        return "needs a letter or a digit"
    if any(not (c.isalnum() or c in _WORD_SEPARATORS) for c in plain):
        return "only letters, digits, spaces, hyphens, apostrophes and dots"
    return None


def rules_key(keys: Keys, session_id: str) -> str:
    return topic_key(keys, f"session:{session_id}", "rules")


def rules_generation_key(keys: Keys, session_id: str) -> str:
    """Counts the room's rule changes: a load that read the database before a change
    committed must not cache what it read after the change dropped the cache."""
    return topic_key(keys, f"session:{session_id}", "rulesgen")


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
                pipe.incr(rules_generation_key(services.keys, session_id))
                pipe.pexpire(rules_generation_key(services.keys, session_id), GENERATION_TTL_MS)
                pipe.delete(rules_key(services.keys, session_id))
            await pipe.execute()
    except UNREACHABLE:
        log.warning("chat rules of %d rooms apply within %d ms", len(session_ids), RULES_TTL_MS)
