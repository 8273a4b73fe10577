"""Background jobs of payouts: the daily run, and the sweep that finishes what a crash or a
lost callback left."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from commerce.payouts import service
from core.clock import utcnow

# 19:00 UTC is 02:00 in Jakarta: the day's sales are in, the banks' nightly batches ahead.
PAYOUT_HOUR_UTC = 19


def next_run_at(now: datetime | None = None) -> datetime:
    now = now or utcnow()
    at = now.replace(hour=PAYOUT_HOUR_UTC, minute=0, second=0, microsecond=0)
    return at if at > now else at + timedelta(days=1)


def daily_run_id(now: datetime | None = None) -> str:
    """One run a day: started twice (two workers, a retry) it pays nobody twice."""
    return f"daily:{(now or utcnow()).date().isoformat()}"


async def payout_run(ctx: dict[str, Any]) -> int:
    """Cron: the day's payout run. Returns how many payouts it made."""
    return len((await service.run(ctx["services"], daily_run_id())).made)


async def payout_sweep(ctx: dict[str, Any]) -> int:
    """Cron: hand over payouts left pending, ask about submitted ones. Idempotent."""
    return await service.sweep(ctx["services"])
