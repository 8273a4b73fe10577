"""Background jobs of the charity's books."""

from __future__ import annotations

import logging
from typing import Any

from commerce.outbox import service as outbox
from core.services import Services
from donations.charity import sequencer
from donations.transparency import log as tlog

log = logging.getLogger("panen.transparency")

STUCK_S = 60  # a pass runs right after every commit and this sweep every 2 s


async def sequence_log(ctx: dict[str, Any]) -> int:
    """Cron: log entries whose money committed but that nobody sequenced (the process
    died in between, or the database went away), then the events held for them. Says
    loudly when entries stay queued: something keeps the sequencer from them."""
    services: Services = ctx["services"]
    await sequencer.catch_up(services)
    await outbox.deliver(services)
    async with services.db.reader() as s:
        count, oldest = await tlog.backlog(s)
    if oldest > STUCK_S:
        log.error("%d log entries wait to be sequenced, the oldest for %.0f s", count, oldest)
    return count
