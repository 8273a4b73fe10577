"""Request bodies and JSON of sessions and listings."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, Field, StringConstraints

from commerce.catalog.models import Product
from commerce.sessions.models import ChatBan, Listing, LiveSession
from core.clock import rfc3339
from core.fields import Amount, Bps, Currency, Id, Title, Url
from core.http import Body
from core.shapes import NotRequired, TypedDict, closed


class CreateSession(Body):
    title: Title
    charity_id: Id
    campaign_id: Id | None = None
    stream_url: Url | None = None
    scheduled_at: AwareDatetime | None = None
    currency: Currency
    moderate_messages: bool = False


class CreateListing(Body):
    product_id: Id
    price: Amount
    stock: Annotated[int, Field(ge=0, le=10_000_000)]
    pledge_bps: Bps = 0
    pledge_per_unit: Annotated[int, Field(ge=0)] = 0
    max_per_buyer: Annotated[int, Field(gt=0, le=10_000)] | None = None


@closed
class ListingProduct(TypedDict):
    name: str
    unit: str
    farmer_id: str
    image_url: str | None
    origin: str | None


@closed
class ListingOut(TypedDict):
    id: str
    session_id: str
    product_id: str
    price: int
    stock: int
    pledge_bps: int
    pledge_per_unit: int
    max_per_buyer: int | None
    product: NotRequired[ListingProduct]
    remaining: NotRequired[int | None]  # on a pinned card: units left to sell


@closed
class PinnedMessage(TypedDict):
    text: str
    at: str | None


@closed
class SessionOut(TypedDict):
    id: str
    host_id: str
    title: str
    charity_id: str
    campaign_id: str | None
    stream_url: str | None
    scheduled_at: str | None
    currency: str
    status: str
    started_at: str | None
    ended_at: str | None
    pinned_listing_id: str | None
    moderate_messages: bool
    slow_mode_s: int
    pinned_message: PinnedMessage | None
    created_at: str | None


@closed
class SessionList(TypedDict):
    sessions: list[SessionOut]


@closed
class CharityRef(TypedDict):
    id: str
    name: str


@closed
class CampaignRef(TypedDict):
    id: str
    title: str
    unit_name: str
    unit_cost: int
    goal_units: int


@closed
class SessionDetail(SessionOut):
    listings: list[ListingOut]
    charity: CharityRef | None
    campaign: NotRequired[CampaignRef]
    # The room's totals as the socket shows them (docs/api.md, "Session totals").
    totals: NotRequired[dict[str, Any]]


def listing_json(listing: Listing, product: Product | None = None) -> ListingOut:
    out: ListingOut = {
        "id": listing.id,
        "session_id": listing.session_id,
        "product_id": listing.product_id,
        "price": listing.price,
        "stock": listing.stock,
        "pledge_bps": listing.pledge_bps,
        "pledge_per_unit": listing.pledge_per_unit,
        "max_per_buyer": listing.max_per_buyer,
    }
    if product is not None:
        out["product"] = {
            "name": product.name,
            "unit": product.unit,
            "farmer_id": product.farmer_id,
            "image_url": product.image_url,
            "origin": product.origin,
        }
    return out


def session_json(s: LiveSession) -> SessionOut:
    return {
        "id": s.id,
        "host_id": s.host_id,
        "title": s.title,
        "charity_id": s.charity_id,
        "campaign_id": s.campaign_id,
        "stream_url": s.stream_url,
        "scheduled_at": rfc3339(s.scheduled_at),
        "currency": s.currency,
        "status": s.status,
        "started_at": rfc3339(s.started_at),
        "ended_at": rfc3339(s.ended_at),
        "pinned_listing_id": s.pinned_listing_id,
        "moderate_messages": s.moderate_messages,
        "slow_mode_s": s.slow_mode_s,
        "pinned_message": pinned_message_json(s),
        "created_at": rfc3339(s.created_at),
    }


BlockedWord = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
PinnedText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
MAX_BLOCKED_WORDS = 200
MAX_SLOW_MODE_S = 3600


class ChatRulesBody(Body):
    """What the host changes of the room's chat; a field left out stays as it is."""

    slow_mode_s: Annotated[int, Field(ge=0, le=MAX_SLOW_MODE_S)] = 0
    blocked_words: Annotated[
        list[BlockedWord], Field(max_length=MAX_BLOCKED_WORDS, default_factory=list)
    ]
    pinned_message: PinnedText | None = None  # null takes it down


@closed
class ChatRulesOut(TypedDict):
    session_id: str
    slow_mode_s: int
    blocked_words: list[str]
    pinned_message: PinnedMessage | None


class BanBody(Body):
    user_id: Id
    session_id: Id | None = None  # the room it happened in, for the host's memory
    reason: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = None


@closed
class BanOut(TypedDict):
    user_id: str
    display_name: str
    session_id: str | None
    reason: str | None
    created_at: str | None


@closed
class BanList(TypedDict):
    bans: list[BanOut]


@closed
class Unbanned(TypedDict):
    user_id: str
    status: str


def pinned_message_json(live: LiveSession) -> PinnedMessage | None:
    if live.pinned_message is None:
        return None
    return {"text": live.pinned_message, "at": rfc3339(live.pinned_message_at)}


def chat_rules_json(live: LiveSession) -> ChatRulesOut:
    return {
        "session_id": live.id,
        "slow_mode_s": live.slow_mode_s,
        "blocked_words": list(live.blocked_words),
        "pinned_message": pinned_message_json(live),
    }


def ban_json(ban: ChatBan) -> BanOut:
    return {
        "user_id": ban.user_id,
        "display_name": ban.display_name,
        "session_id": ban.session_id,
        "reason": ban.reason,
        "created_at": rfc3339(ban.created_at),
    }
