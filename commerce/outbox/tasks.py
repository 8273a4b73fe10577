"""Background jobs of the outbox."""

from __future__ import annotations

from typing import Any

from commerce.outbox import service


async def relay_job(ctx: dict[str, Any]) -> int:
    """Cron: deliver what no request or job relayed (it crashed, or Redis was away)."""
    return await service.relay(ctx["services"])
