"""Request bodies of energy points."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from core.fields import Amount, Currency, Id, Name
from core.http import Body
from core.shapes import NotRequired, TypedDict, closed
from donations.charity.schemas import ReceiptProof

MAX_POINTS = 10**9


class Redeem(Body):
    pool_id: Id
    points: Annotated[int, Field(gt=0, le=MAX_POINTS)]
    session_id: Id | None = None


class CreatePool(Body):
    charity_id: Id | None = None
    campaign_id: Id | None = None
    session_id: Id | None = None
    sponsor_name: Name
    # "100 points = one Love Package": rate_points 100 and, for a campaign, rate_amount
    # defaults to its unit cost. "1 point = Rp 10": rate_points 1, rate_amount 10.
    rate_points: Annotated[int, Field(gt=0, le=1_000_000)]
    rate_amount: Amount | None = None
    cap: Amount
    currency: Currency | None = None


@closed
class Lot(TypedDict):
    """Points earned together, spent soonest-expiring first."""

    id: str
    source: str
    points: int
    remaining: int
    earned_at: str | None
    expires_at: str | None
    expired: bool


@closed
class PointsMove(TypedDict):
    id: str
    kind: str
    session_id: str | None
    points: int
    at: str | None


@closed
class MyPoints(TypedDict):
    balance: int
    redeemable: int
    blocked: bool  # points held but none redeemable (a clawback left a debt)
    lots: list[Lot]
    history: list[PointsMove]


@closed
class Rate(TypedDict):
    points: int
    amount: int


@closed
class PoolOut(TypedDict):
    id: str
    sponsor_id: str
    sponsor_name: str
    charity_id: str
    campaign_id: str | None
    session_id: str | None
    currency: str
    rate: Rate
    cap: int
    used: int
    remaining: int
    created_at: str | None
    unit_name: NotRequired[str]
    unit_cost: NotRequired[int]


@closed
class PoolList(TypedDict):
    pools: list[PoolOut]


@closed
class RedemptionOut(TypedDict):
    id: str
    pool_id: str
    session_id: str | None
    charity_id: str
    points: int
    amount: int
    currency: str
    idempotency_key: str
    created_at: str | None
    entry_index: NotRequired[int]
    unit_name: NotRequired[str]
    unit_cost: NotRequired[int]


@closed
class Redeemed(TypedDict):
    redemption: RedemptionOut
    balance: int
    redeemable: int


@closed
class RedemptionReceipt(ReceiptProof):
    redemption: RedemptionOut


@closed
class EarningRules(TypedDict):
    watch_minute_s: int
    watch_points_per_minute: int
    watch_max_minutes_per_session: int
    watch_max_minutes_per_day: int
    likes_per_point: int
    like_max_points_per_session: int
    spend_minor_per_point: dict[str, int]
    donate_minor_per_point: dict[str, int]
    points_ttl_s: int
