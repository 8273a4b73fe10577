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

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self, Union

import orjson

from core.redis import Arg, Keys, Lua, run_scripts
from core.services import Services


class EventError(ValueError):
    """A dict that is not a well-formed event of the type it names."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One kind of event on the bus, defined once: the producer builds it, `to_json` is what
    travels, and consumers (a room's fold) read it back with `from_json`. Subclasses are
    frozen dataclasses with a `type`; a field whose default is None is left out while None."""

    type: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Read an event back, checking each field's type (ints are never bools)."""
        if data.get("type") != cls.type:
            raise EventError(f"not a {cls.type} event")
        values: dict[str, Any] = {}
        for f, kinds in _field_kinds(cls):
            if f.name not in data:
                if f.default is dataclasses.MISSING:
                    raise EventError(f"{cls.type}: {f.name} is missing")
                continue
            value = data[f.name]
            if not any(_is(value, kind) for kind in kinds):
                raise EventError(f"{cls.type}: {f.name} is not {kinds}")
            values[f.name] = value
        return cls(**values)


def _is(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is type(None):
        return value is None
    return isinstance(value, kind)


_KINDS: dict[type, list[tuple[dataclasses.Field[Any], tuple[type, ...]]]] = {}


def _field_kinds(cls: type[Event]) -> list[tuple[dataclasses.Field[Any], tuple[type, ...]]]:
    """Each field and the runtime types its annotation allows (read once per class)."""
    if cls in _KINDS:
        return _KINDS[cls]
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = typing.get_args(hint)
        union = typing.get_origin(hint) in (Union, types.UnionType)
        kinds = (
            tuple(typing.get_origin(a) or a for a in args)
            if union
            else (typing.get_origin(hint) or hint,)
        )
        out.append((f, kinds))
    _KINDS[cls] = out
    return out


Topical = tuple[str, "Event | dict[str, Any]"]


def as_json(event: Event | dict[str, Any]) -> dict[str, Any]:
    return event.to_json() if isinstance(event, Event) else event


# An event's field naming the database transaction that wrote it (see core.db.Snapshot);
# consumers use it and strip it, clients never see it.
WRITTEN_BY = "_xid"

INBOX_CAP = 100_000  # a ticker that stalls this long has worse problems than lost events
INBOX_TTL_MS = 60_000

# A room's ticker beats on its own; a quiet topic's (`farmer:`, `me:`) sleeps until an
# empty message on its channel nudges it. ARGV[4..] are the events, in order.
_ENQUEUE = Lua(
    """
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RPUSH', KEYS[1], unpack(ARGV, 4))
  redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  if ARGV[3] ~= '' then redis.call('SPUBLISH', ARGV[3], '') end
  return 1
end
return 0
"""
)

# Lua's unpack is bounded by its stack; larger groups of one topic go in several calls.
MAX_EVENTS_PER_CALL = 1000


def topic_key(keys: Keys, topic: str, part: str) -> str:
    """A key of one topic. Every key of a topic shares one hash tag (a session's with its
    stock and reservations) so the topic's scripts run on one Redis Cluster shard."""
    return keys.topic(topic, part)


async def publish(services: Services, topic: str, event: Event | dict[str, Any]) -> None:
    """Send one event to every subscriber of `topic`."""
    await publish_many(services, [(topic, event)])


async def publish_many(services: Services, events: Sequence[Topical]) -> None:
    """Send several events in one round trip: one script call per topic, each topic's
    events in the order given (a relay pass or a settlement batch has thousands)."""
    by_topic: dict[str, list[bytes]] = {}
    for topic, event in events:
        body = as_json(event)
        if "type" not in body:
            raise ValueError("an event needs a type")
        by_topic.setdefault(topic, []).append(orjson.dumps(body))
    keys = services.keys
    calls: list[tuple[Lua, Sequence[str], Sequence[Arg]]] = []
    for topic, bodies in by_topic.items():
        topic_keys = [topic_key(keys, topic, "inbox"), topic_key(keys, topic, "state")]
        channel = "" if topic.startswith("session:") else keys.channel(topic)
        for i in range(0, len(bodies), MAX_EVENTS_PER_CALL):
            chunk = bodies[i : i + MAX_EVENTS_PER_CALL]
            calls.append((_ENQUEUE, topic_keys, [INBOX_CAP, INBOX_TTL_MS, channel, *chunk]))
    await run_scripts(services.redis, calls)
