"""Background jobs of the transparency log."""

from __future__ import annotations

from typing import Any

from core.services import Services
from donations.transparency import checkpoint, signing


async def publish_checkpoint(ctx: dict[str, Any]) -> int:
    """The cadence job: sign the current tree if it grew. Idempotent (one checkpoint a size)."""
    services: Services = ctx["services"]
    key = signing.load_or_create(services.settings.signing_key_file)
    return (await checkpoint.publish(services.db, key)).size
