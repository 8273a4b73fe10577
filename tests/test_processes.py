"""The real `panen` command: web server, worker, migrate, users create."""

import subprocess
import sys
import time

import httpx
import pytest

from tests.api import handle
from tests.conftest import process_env
from tests.processes import Server, ThrowawayRedis, Worker, running


@pytest.fixture(scope="module")
def env(settings):
    return process_env(settings)


def test_serve_and_worker_come_up_ready_and_the_worker_reports_in(env):
    server = Server(env)
    with running(server, Worker(env)):
        deadline = time.monotonic() + 15
        body = {}
        while time.monotonic() < deadline:
            body = httpx.get(server.base + "/readyz").json()
            if body.get("workers", 0) >= 1:
                break
            time.sleep(0.2)
        assert body["checks"] == {"database": "ok", "redis": "ok"}
        assert body["workers"] >= 1
        assert httpx.get(server.base + "/healthz").json() == {"status": "ok"}
        metrics = httpx.get(server.base + "/metrics").text
        assert "panen_http_requests_total" in metrics


def test_a_user_made_by_the_cli_logs_in_through_the_real_server(env):
    h = handle("cli")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "panen",
            "users",
            "create",
            "--handle",
            h,
            "--role",
            "host",
            "--role",
            "sponsor",
            "--password",
            "a long password",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "panen",
            "users",
            "create",
            "--handle",
            h,
            "--role",
            "host",
            "--password",
            "a long password",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1
    assert "handle_taken" in again.stderr
    server = Server(env)
    with running(server):
        r = httpx.post(
            server.base + "/api/auth/login", json={"handle": h, "password": "a long password"}
        )
        assert r.status_code == 200
        assert r.json()["user"]["roles"] == ["host", "sponsor"]
        me = httpx.get(
            server.base + "/api/me", headers={"Authorization": f"Bearer {r.json()['token']}"}
        )
        assert me.json()["user"]["handle"] == h


def test_panen_migrate_on_a_migrated_database_is_a_no_op(env):
    out = subprocess.run(
        [sys.executable, "-m", "panen", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


async def test_a_job_enqueued_by_a_web_process_is_run_by_a_worker(env, settings):
    from core.services import Services

    services = await Services.start(settings, pool_size=1)
    try:
        with running(Worker(env)):
            job_id = f"canary-{handle('j')}"
            job = await services.enqueue("canary", job_id=job_id)
            assert job is not None
            assert await services.enqueue("canary", job_id=job_id) is None  # same id: once
            result = await job.result(timeout=20)
            assert result["worker"]
    finally:
        await services.close()


async def test_the_job_queue_runs_on_a_redis_of_its_own_and_readiness_checks_it(env, settings):
    """PANEN_QUEUE_URL: the web process enqueues and the worker takes jobs there; nothing of
    the queue is in REDIS_URL's Redis, and /readyz says when the queue's Redis is away."""
    from dataclasses import replace

    import redis as sync_redis

    from core.services import Services, arq_keys_under

    queue = ThrowawayRedis()
    queue.start()
    prefix = f"{settings.redis_prefix}_q"  # this test's own keys, to look for them after
    conf = replace(settings, queue_url=queue.url, redis_prefix=prefix)
    env_q = {**env, "PANEN_QUEUE_URL": queue.url, "REDIS_PREFIX": prefix}
    server = Server(env_q)
    services = await Services.start(conf, pool_size=1)
    try:
        with running(server, Worker(env_q)):
            job = await services.enqueue("canary", job_id=f"canary-{handle('q')}")
            assert job is not None
            assert (await job.result(timeout=20))["worker"]
            in_queue = sync_redis.Redis.from_url(queue.url).keys(f"{prefix}:arq:*")
            in_main = sync_redis.Redis.from_url(settings.redis_url).keys(f"{prefix}:arq:*")
            assert in_queue and in_main == []
            async with httpx.AsyncClient(base_url=server.base) as http:
                ready = (await http.get("/readyz")).json()
                assert ready["checks"] == {"database": "ok", "redis": "ok", "queue": "ok"}
                queue.stop()
                r = await http.get("/readyz")
                assert r.status_code == 503 and r.json()["checks"]["queue"].startswith("error")
    finally:
        await services.close()
        queue.stop()
        arq_keys_under(settings.redis_prefix)  # this process's jobs, as the other tests expect


def test_a_queue_url_that_is_not_one_redis_is_refused_at_start():
    from core.settings import Settings, SettingsError

    for bad in ("redis+cluster://127.0.0.1:7000", "http://queue", "127.0.0.1:6379"):
        with pytest.raises(SettingsError, match="PANEN_QUEUE_URL"):
            Settings.from_env({"PANEN_ENV": "development", "PANEN_QUEUE_URL": bad})
