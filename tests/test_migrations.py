import asyncio

from panen.migrate import check, upgrade


async def test_alembic_upgrade_head_runs_on_an_empty_database_and_matches_the_models(
    unused_database_url,
):
    # alembic's env runs its own event loop, so it gets a thread of its own
    await asyncio.to_thread(upgrade, unused_database_url)
    await asyncio.to_thread(check, unused_database_url)  # raises if models and migrations differ
    await asyncio.to_thread(upgrade, unused_database_url)  # a second upgrade is a no-op
