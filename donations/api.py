"""The donations package as the app mounts it: every route, and the hooks into commerce.

Importing this module (the app and the worker both do) registers the pledge listener and
the owner of donation payments with `commerce.hooks`.
"""

from __future__ import annotations

from donations import (
    disbursements,
    donate,
    energy,
    matches,
    pledges,
    points_api,
    receipts,
    reports,
)
from donations.routes import api

_MODULES = (disbursements, donate, matches, points_api, receipts, reports)

pledges.register()
donate.register()
energy.register()

__all__ = ["api"]
