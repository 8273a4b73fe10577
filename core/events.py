"""Publishing an event to a topic (`session:{id}`, `farmer:{id}`, `me:{user_id}`).

Producers anywhere (web handlers, workers, the outbox relay) call `publish`; the live
gateway (`live/`) owns what happens next. Keep this signature stable.

An event is not broadcast as it is: it joins the topic's inbox in Redis, and the one
process that holds the topic's ticker lease folds the inbox into the topic's totals a few
times a second and publishes one frame with a shared sequence number. An event is queued
only while the topic is live (its folded state exists in Redis): a topic nobody watches is
rebuilt from the database when somebody does, so queueing for it would count twice.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.redis import Keys
from core.services import Services

INBOX_CAP = 100_000  # a ticker that stalls this long has worse problems than lost events
INBOX_TTL_MS = 60_000

# A room's ticker beats on its own; a quiet topic's (`farmer:`, `me:`) sleeps until an
# empty message on its channel nudges it.
_ENQUEUE = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RPUSH', KEYS[1], ARGV[1])
  redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], '') end
  return 1
end
return 0
"""


def topic_key(keys: Keys, topic: str, part: str) -> str:
    """A key of one topic. Every key of a topic shares one hash tag (a session's with its
    stock and reservations) so the topic's scripts run on one Redis Cluster shard."""
    kind, _, ident = topic.partition(":")
    if kind == "session" and ident:
        return keys.session(ident, "live", part)
    return keys("live", "{" + topic + "}", part)


async def publish(services: Services, topic: str, event: dict[str, Any]) -> None:
    """Send one event (a JSON object with a `type`) to every subscriber of `topic`."""
    if "type" not in event:
        raise ValueError("an event needs a type")
    keys = services.keys
    # register_script runs EVALSHA and falls back to EVAL once after a Redis restart.
    script = services.redis.register_script(_ENQUEUE)
    await script(
        keys=[topic_key(keys, topic, "inbox"), topic_key(keys, topic, "state")],
        args=[
            orjson.dumps(event),
            INBOX_CAP,
            INBOX_TTL_MS,
            "" if topic.startswith("session:") else keys.channel(topic),
        ],
    )
