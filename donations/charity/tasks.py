"""Background jobs of the charity's books."""

from __future__ import annotations

from typing import Any

from donations.charity import sequencer


async def sequence_log(ctx: dict[str, Any]) -> None:
    """Cron: log entries whose money committed but that nobody sequenced (the process
    died in between, or the database went away); the relay's cron then sends the events
    held for them."""
    await sequencer.catch_up(ctx["services"])
