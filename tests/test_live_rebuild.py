"""A room rebuilt from the database counts every event once: those its read included are
told apart from those it did not by their writing transaction, not by the clock."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from core.events import WRITTEN_BY
from core.services import Services
from live import rooms
from panen.flows.settle import settle_all
from tests.api import live_listing, order, pay, register


async def outbox_events(services: Services, topic: str) -> list[dict[str, Any]]:
    """The topic's events as the relay sends them: each with its writing transaction."""
    async with services.db.reader() as s:
        rows = await s.execute(
            text(
                "SELECT o.xid, x.e->1 AS event FROM outbox o,"
                " jsonb_array_elements(o.events) WITH ORDINALITY AS x(e, n)"
                " WHERE x.e->>0 = :t ORDER BY o.id, x.n"
            ),
            {"t": topic},
        )
        return [{**r.event, WRITTEN_BY: int(r.xid)} for r in rows]


async def test_a_cold_rebuild_neither_recounts_what_it_read_nor_misses_what_committed_after(
    app, client, admin_token
):
    services: Services = app.state.services
    world, listing = await live_listing(client, admin_token, stock=10)
    topic = f"session:{world.session['id']}"
    buyer = await register(client)
    first = (await order(client, buyer, listing["id"])).json()["order"]
    assert (await pay(client, buyer, first)).status_code == 200
    await settle_all(services)

    # A transaction that is running while the room is rebuilt, and commits after.
    async with services.db.engine.connect() as late:
        late_xid = int(
            (await late.execute(text("SELECT pg_current_xact_id()::text::bigint"))).scalar_one()
        )
        state = await rooms.cold_state(services, topic)
        await late.commit()
    assert state["totals"]["orders"] == 1  # the settled order, read from the database
    already = rooms.counted_in(state)
    assert already is not None and not already.sees(late_xid)

    # The first order's event arrives after the rebuild (the relay is behind): no change.
    (paid,) = [e for e in await outbox_events(services, topic) if e["type"] == "order_paid"]
    rooms.fold(state, topic, paid, already=already)
    assert state["totals"]["orders"] == 1
    # An order settled by the transaction that was still running counts.
    later = {**paid, "order_id": "ord_later", WRITTEN_BY: late_xid}
    rooms.fold(state, topic, later, already=already)
    assert state["totals"]["orders"] == 2

    # And one settled after the rebuild counts too, with the real relay's event.
    second = (await order(client, buyer, listing["id"])).json()["order"]
    assert (await pay(client, buyer, second)).status_code == 200
    await settle_all(services)
    events = [e for e in await outbox_events(services, topic) if e["type"] == "order_paid"]
    assert [e["order_id"] for e in events] == [first["id"], second["id"]]
    rooms.fold(state, topic, events[1], already=already)
    assert state["totals"]["orders"] == 3
