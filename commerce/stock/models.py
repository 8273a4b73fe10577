"""The table of stock counters' generations."""

from __future__ import annotations

from sqlalchemy import (
    Integer,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import ID, Base


class InventoryGeneration(Base):
    """Bumped each time a stock counter is rebuilt from the database.

    An order row is only written under the generation its Redis reservation was made in
    (checked with a key-share lock on this row), so a reservation made against a counter
    that has since been wiped and rebuilt can never land in the database uncounted.
    """

    __tablename__ = "inventory_generations"

    inventory_id: Mapped[str] = mapped_column(ID, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, nullable=False)
