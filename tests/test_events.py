"""Publishing events (core/events.py): many in one round trip, each topic in order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.exceptions import ConnectionError

from core.events import publish, publish_many, topic_key
from core.ids import new_id
from core.services import Services
from core.settings import Settings
from live import history
from live.history import TopicKeys
from live.ticker import Ticker
from tests.test_live_fold import _room as room_state
from tests.test_live_fold import paid


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


async def test_events_a_failed_frame_folded_are_folded_again_and_counted_once(
    services: Services, monkeypatch: pytest.MonkeyPatch
):
    """A tick whose frame could not be written (Redis failing over under it) leaves its
    events in the inbox and the room's state as it was; the next tick counts each of them
    exactly once."""
    topic = f"session:{new_id('ses')}"
    tk = TopicKeys.of(services.keys, topic)
    await services.redis.set(tk.state, orjson.dumps(room_state()))
    ticker = Ticker(services, "owner-1", topic, topic, tk, lambda: 1)
    await ticker.tick()  # holds the lease now
    await publish_many(services, [(topic, paid(f"ord_{n}")) for n in range(3)])
    real_emit, calls = history.emit, []

    async def failing_once(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("the shard went away")
        return await real_emit(*args, **kwargs)

    monkeypatch.setattr(history, "emit", failing_once)
    with pytest.raises(ConnectionError):
        await ticker.tick()
    await ticker.tick()
    state = orjson.loads(await services.redis.get(tk.state))
    assert state["totals"]["orders"] == 3 and state["totals"]["gross"] == 3 * 2000
    await publish_many(services, [(topic, paid("ord_1"))])  # the relay sends one again
    await ticker.tick()
    state = orjson.loads(await services.redis.get(tk.state))
    assert state["totals"]["orders"] == 3
