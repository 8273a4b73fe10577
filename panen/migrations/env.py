"""Alembic environment: runs migrations on the async engine, against every model."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from core.db import create_engine
from panen.models import metadata

target_metadata = metadata()

# Columns the models no longer use but the previous release's processes still write during a
# rolling deploy: nullable now, dropped by a later migration (expand, then contract).
RETIRING = frozenset({("charity_funds", "entry_index")})


def _include(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    table = getattr(getattr(obj, "table", None), "name", None)
    return not (type_ == "column" and reflected and (table, name) in RETIRING)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        include_object=_include,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _online() -> None:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "", pool_size=1)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
asyncio.run(_online())
