"""Request bodies and JSON of charities and campaigns."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from commerce.charities.models import Campaign, Charity
from core.clock import rfc3339
from core.fields import Amount, Currency, Id, LongText, Name, UnitName
from core.http import Body


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


def campaign_json(c: Campaign) -> dict[str, object]:
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


def charity_json(c: Charity, campaigns: list[Campaign]) -> dict[str, object]:
    return {
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "admin_user_id": c.admin_user_id,
        "created_at": rfc3339(c.created_at),
        "campaigns": [campaign_json(k) for k in campaigns],
    }
