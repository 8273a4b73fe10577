"""Publishing an event to a topic (`session:{id}`, `farmer:{id}`, `me:{user_id}`).

Producers anywhere (web handlers, workers, the outbox relay) call `publish`; the live
gateway (`live/`) owns what happens next: the shared per-topic sequence, the bounded
history for reconnects, and the fan-out to sockets. Keep this signature stable.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.services import Services


async def publish(services: Services, topic: str, event: dict[str, Any]) -> None:
    """Send one event (a JSON object with a `type`) to every subscriber of `topic`."""
    if "type" not in event:
        raise ValueError("an event needs a type")
    await services.redis.publish(services.keys.channel(topic), orjson.dumps(event))
