"""Reads that tolerate a little lag from a PostgreSQL streaming replica (DATABASE_REPLICA_URL),
on a primary and a standby the test starts (initdb, pg_basebackup), through a real server."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from panen.embedded import ensure_database
from panen.migrate import upgrade
from tests.api import PASSWORD, auth, handle
from tests.conftest import process_env
from tests.processes import Server, StreamingPair, running


@pytest.fixture(scope="module")
def pair() -> Iterator[StreamingPair]:
    # Under /tmp itself: the servers may run as another user, who cannot enter pytest's
    # own (private) temporary directories.
    home = Path(tempfile.mkdtemp(prefix="panen-pg-"))
    p = StreamingPair(home)
    try:
        p.start()
        yield p
    finally:
        p.stop()
        shutil.rmtree(home, ignore_errors=True)


async def until(check: Any, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def deployment(pair: StreamingPair, settings: Any) -> tuple[dict[str, str], str]:
    """The environment of a server on the pair (migrated on the primary), and an admin."""
    primary = ensure_database(pair.url(pair.primary_port), "panen_replica", fresh=True)
    upgrade(primary)
    env = {
        **process_env(settings),
        "DATABASE_URL": primary,
        "DATABASE_REPLICA_URL": pair.url(pair.replica_port, "panen_replica"),
        "REDIS_PREFIX": f"{settings.redis_prefix}_replica",
    }
    admin = handle("admin")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "panen",
            "users",
            "create",
            "--handle",
            admin,
            "--role",
            "admin",
            "--password",
            PASSWORD,
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return env, admin


async def test_public_lists_read_the_replica_and_the_primary_serves_them_when_it_is_away(
    pair: StreamingPair, deployment: tuple[dict[str, str], str]
) -> None:
    env, admin = deployment
    with running(server := Server(env)):
        async with httpx.AsyncClient(base_url=server.base, timeout=20) as http:
            r = await http.post("/api/auth/login", json={"handle": admin, "password": PASSWORD})
            token, me = r.json()["token"], r.json()["user"]["id"]

            async def charity(name: str) -> str:
                r = await http.post(
                    "/api/charities",
                    headers=auth(token),
                    json={"name": name, "description": "-", "admin_user_id": me},
                )
                assert r.status_code == 201, r.text
                return str(r.json()["id"])

            async def listed() -> set[str]:
                r = await http.get("/api/charities")
                assert r.status_code == 200, r.text
                return {c["name"] for c in r.json()["charities"]}

            await charity("Pelita")
            await until(lambda: _has(listed, "Pelita"))
            # The standby stops replaying: the list, read there, does not move; a read that
            # must see the write (the charity itself) comes from the primary.
            standby = await asyncpg.connect(pair.url(pair.replica_port, "panen_replica"))
            try:
                await standby.execute("SELECT pg_wal_replay_pause()")
                new = await charity("Sahabat Tani")
                assert (await http.get(f"/api/charities/{new}")).status_code == 200
                await asyncio.sleep(0.5)
                assert "Sahabat Tani" not in await listed()
                await standby.execute("SELECT pg_wal_replay_resume()")
            finally:
                await standby.close()
            await until(lambda: _has(listed, "Sahabat Tani"))
            # The standby gone: the primary answers the same reads.
            pair.stop_replica()
            await charity("Lumbung")
            assert {"Pelita", "Sahabat Tani", "Lumbung"} <= await listed()
            assert (await http.get("/api/sessions")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200


async def _has(listed: Any, name: str) -> bool:
    return name in await listed()
