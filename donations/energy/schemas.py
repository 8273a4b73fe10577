"""Request bodies of energy points."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from core.fields import Amount, Currency, Id, Name
from core.http import Body

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
