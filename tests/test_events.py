"""Publishing events (core/events.py): many in one round trip, each topic in order."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from core.events import publish, publish_many, topic_key
from core.ids import new_id
from core.services import Services
from core.settings import Settings


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    s = await Services.start(settings, pool_size=1, jobs=False)
    yield s
    await s.close()


async def inbox(services: Services, topic: str) -> list[dict[str, object]]:
    raw = await services.redis.lrange(topic_key(services.keys, topic, "inbox"), 0, -1)  # type: ignore[misc]
    return [orjson.loads(r) for r in raw]


async def test_many_events_reach_each_live_topic_in_order_even_after_redis_forgot_the_script(
    services: Services,
):
    room, me, nobody = f"session:{new_id('ses')}", f"me:{new_id('usr')}", f"me:{new_id('usr')}"
    for live in (room, me):  # a topic is live while its folded state exists
        await services.redis.set(topic_key(services.keys, live, "state"), b"{}")
    await services.redis.script_flush()  # as after a Redis restart
    await publish_many(
        services,
        [
            (room, {"type": "a", "n": 1}),
            (me, {"type": "b", "n": 1}),
            (room, {"type": "a", "n": 2}),
            (nobody, {"type": "c", "n": 1}),
            (room, {"type": "a", "n": 3}),
        ],
    )
    await services.redis.script_flush()
    await publish(services, me, {"type": "b", "n": 2})
    assert [e["n"] for e in await inbox(services, room)] == [1, 2, 3]
    assert [e["n"] for e in await inbox(services, me)] == [1, 2]
    assert await inbox(services, nobody) == []  # nobody watches: nothing queued


async def test_an_event_without_a_type_is_refused_before_anything_is_sent(services: Services):
    room = f"session:{new_id('ses')}"
    await services.redis.set(topic_key(services.keys, room, "state"), b"{}")
    with pytest.raises(ValueError, match="type"):
        await publish_many(services, [(room, {"type": "a"}), (room, {"n": 2})])
    assert await inbox(services, room) == []
