"""Request bodies and JSON of charities and campaigns."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from commerce.charities.models import Campaign, Charity
from core.clock import rfc3339
from core.fields import Amount, Currency, Id, LongText, Name, UnitName
from core.http import Body
from core.shapes import TypedDict, closed


class CreateCharity(Body):
    name: Name
    description: LongText
    admin_user_id: Id


class CreateCampaign(Body):
    title: Name
    unit_name: UnitName
    unit_cost: Amount
    goal_units: Annotated[int, Field(gt=0, le=100_000_000)]
    currency: Currency = "IDR"


@closed
class CampaignOut(TypedDict):
    id: str
    charity_id: str
    title: str
    unit_name: str
    unit_cost: int
    currency: str
    goal_units: int
    created_at: str | None


@closed
class CharityOut(TypedDict):
    id: str
    name: str
    description: str
    admin_user_id: str
    created_at: str | None
    campaigns: list[CampaignOut]


def campaign_json(c: Campaign) -> CampaignOut:
    return {
        "id": c.id,
        "charity_id": c.charity_id,
        "title": c.title,
        "unit_name": c.unit_name,
        "unit_cost": c.unit_cost,
        "currency": c.currency,
        "goal_units": c.goal_units,
        "created_at": rfc3339(c.created_at),
    }


def charity_json(c: Charity, campaigns: list[Campaign]) -> CharityOut:
    return {
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "admin_user_id": c.admin_user_id,
        "created_at": rfc3339(c.created_at),
        "campaigns": [campaign_json(k) for k in campaigns],
    }
