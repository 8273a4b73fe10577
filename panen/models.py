"""Every table of the product: importing a domain's `models` registers its tables on
`Base.metadata`, which Alembic compares with the database."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from core.db import Base

MODEL_MODULES = (
    "core.models",
    "commerce.catalog.models",
    "commerce.charities.models",
    "commerce.sessions.models",
    "commerce.deals.models",
    "commerce.stock.models",
    "commerce.shipping.models",
    "commerce.orders.models",
    "commerce.payments.models",
    "commerce.payouts.models",
    "commerce.ledger.models",
    "commerce.outbox.models",
    "donations.gifts.models",
    "donations.charity.models",
    "donations.transparency.models",
    "donations.energy.models",
    "donations.sponsors.models",
)


def metadata() -> MetaData:
    """`Base.metadata` with every table of every domain on it."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata
