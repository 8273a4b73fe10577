"""Reading charities and campaigns, and who may act for a charity."""

from __future__ import annotations

from sqlalchemy import select

from commerce.charities.models import Campaign, Charity
from core.auth import Principal
from core.db import Database
from core.errors import forbidden, not_found


async def load_charity(db: Database, charity_id: str) -> Charity:
    async with db.reader() as s:
        charity = await s.get(Charity, charity_id)
    if charity is None:
        raise not_found("charity", charity_id)
    return charity


def require_charity_admin(principal: Principal, charity: Charity) -> None:
    if not (principal.is_admin or charity.admin_user_id == principal.user_id):
        raise forbidden("only this charity's admin may do this")


async def campaigns_of(db: Database, charity_ids: list[str]) -> dict[str, list[Campaign]]:
    out: dict[str, list[Campaign]] = {c: [] for c in charity_ids}
    if not charity_ids:
        return out
    async with db.reader() as s:
        rows = await s.execute(
            select(Campaign).where(Campaign.charity_id.in_(charity_ids)).order_by(Campaign.id)
        )
    for campaign in rows.scalars():
        out[campaign.charity_id].append(campaign)
    return out
