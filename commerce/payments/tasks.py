"""Background jobs of payments."""

from __future__ import annotations

from typing import Any

from commerce.payments import service

# A refund is asked of the provider right after its transaction commits; one still
# `refunding` this long after was left by a process that died in between.
STUCK_AFTER_S = 10.0


async def refund_sweep(ctx: dict[str, Any]) -> int:
    """Cron: return the money of payments left `refunding`. Idempotent."""
    services = ctx["services"]
    return await service.execute_refunds(
        services, await service.stuck_refunds(services, STUCK_AFTER_S)
    )
