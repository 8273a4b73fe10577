import asyncio
import secrets

from sqlalchemy import text

from core.db import Database
from panen.embedded import drop_database, ensure_database
from panen.migrate import check, downgrade, upgrade


async def test_alembic_upgrade_head_runs_on_an_empty_database_and_matches_the_models(
    unused_database_url,
):
    # alembic's env runs its own event loop, so it gets a thread of its own
    await asyncio.to_thread(upgrade, unused_database_url)
    await asyncio.to_thread(check, unused_database_url)  # raises if models and migrations differ
    await asyncio.to_thread(upgrade, unused_database_url)  # a second upgrade is a no-op


async def test_unsent_outbox_events_survive_the_move_to_event_lists_and_back(backing):
    """0005 folds each outbox row's (topic, event) into a list; its downgrade unfolds
    the lists into rows again, in order, keeping what was and was not sent."""
    name = f"panen_outbox_{secrets.token_hex(4)}"
    url = await asyncio.to_thread(ensure_database, backing.db_server_url, name, fresh=True)
    db = Database(url, pool_size=1)
    engine = db.engine
    try:
        await asyncio.to_thread(upgrade, url, "0004")
        async with engine.begin() as c:
            await c.execute(
                text(
                    "INSERT INTO outbox (topic, event, sent_at) VALUES"
                    ' (\'session:a\', \'{"type": "x", "n": 1}\', NULL),'
                    ' (\'farmer:b\', \'{"type": "y", "n": 2}\', now())'
                )
            )
        await asyncio.to_thread(upgrade, url, "0005")
        async with engine.begin() as c:
            rows = (await c.execute(text("SELECT events, sent_at FROM outbox ORDER BY id"))).all()
            assert [(r.events, r.sent_at is None) for r in rows] == [
                ([["session:a", {"type": "x", "n": 1}]], True),
                ([["farmer:b", {"type": "y", "n": 2}]], False),
            ]
            await c.execute(
                text(
                    "INSERT INTO outbox (events) VALUES"
                    ' (\'[["me:c", {"type": "z"}], ["session:a", {"type": "w"}]]\')'
                )
            )
        await asyncio.to_thread(downgrade, url, "0004")
        async with engine.begin() as c:
            rows = (
                await c.execute(text("SELECT topic, event, sent_at FROM outbox ORDER BY id"))
            ).all()
        assert [(r.topic, r.event["type"], r.sent_at is None) for r in rows] == [
            ("session:a", "x", True),
            ("farmer:b", "y", False),
            ("me:c", "z", True),
            ("session:a", "w", True),
        ]
    finally:
        await db.close()
        await asyncio.to_thread(drop_database, backing.db_server_url, name)
