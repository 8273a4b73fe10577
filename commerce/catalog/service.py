"""Reading farmers, and who may act for one."""

from __future__ import annotations

from commerce.catalog.models import Farmer
from core.auth import Principal
from core.db import Database
from core.errors import forbidden, not_found


async def load_farmer(db: Database, farmer_id: str) -> Farmer:
    async with db.reader() as s:
        farmer = await s.get(Farmer, farmer_id)
    if farmer is None:
        raise not_found("farmer", farmer_id)
    return farmer


def require_farmer_or_admin(principal: Principal, farmer: Farmer) -> None:
    if not (principal.is_admin or farmer.user_id == principal.user_id):
        raise forbidden("only that farmer or an admin may do this")
