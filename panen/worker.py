"""The arq worker: its jobs, its cron, and the services each job uses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.cron import cron

from commerce.outbox.tasks import relay_job
from commerce.payments.tasks import refund_sweep
from commerce.stock.tasks import reconcile_holds, warm_counters
from core.clock import utcnow
from core.logging import configure_logging
from core.services import Services, arq_queue_name, arq_redis_settings
from core.settings import get_settings
from donations.energy.tasks import award_activity, expire_points
from donations.transparency.tasks import publish_checkpoint
from panen.flows.expire import expire_job
from panen.flows.settle import settle_orders, settle_sweep

log = logging.getLogger("panen.worker")

HEARTBEAT_TTL_S = 30
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    # With a job queue of its own: a settler that finds a backlog calls other workers in.
    ctx["services"] = await Services.start(settings, pool_size=5)
    ctx["heartbeat"] = asyncio.create_task(heartbeat(ctx["services"]))


async def shutdown(ctx: dict[str, Any]) -> None:
    ctx["heartbeat"].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ctx["heartbeat"]
    services: Services = ctx["services"]
    await services.redis.delete(services.keys("workers", WORKER_ID))
    await services.close()


async def heartbeat(services: Services) -> None:
    """Tell the web processes (and /readyz) that this worker is alive."""
    key = services.keys("workers", WORKER_ID)
    while True:
        try:
            await services.redis.set(key, utcnow().isoformat(), ex=HEARTBEAT_TTL_S)
        except Exception:  # Redis may be restarting; the next beat tries again
            log.warning("worker heartbeat failed", exc_info=True)
        await asyncio.sleep(HEARTBEAT_TTL_S / 3)


async def canary(ctx: dict[str, Any]) -> dict[str, str]:
    """A round trip through the queue: operators and tests enqueue it to see a worker answer."""
    return {"worker": WORKER_ID, "at": utcnow().isoformat()}


class WorkerSettings:
    functions: ClassVar[list[Any]] = [canary, settle_orders, award_activity]
    cron_jobs: ClassVar[list[Any]] = [
        # The transparency log's cadence: a signed checkpoint every 15 s when it grew
        # (and at start, which also creates the signing key on a fresh machine).
        cron(publish_checkpoint, second={0, 15, 30, 45}, run_at_startup=True, timeout=30),
        # Money path: settle what no job picked up (crash, lost enqueue), deliver the
        # outbox, and return the stock of reservations nobody paid for.
        cron(settle_sweep, second=set(range(0, 60, 2)), run_at_startup=True, timeout=50),
        cron(warm_counters, second={30}, run_at_startup=True, timeout=50),
        # Units held for orders that never landed (their request died mid-way).
        cron(reconcile_holds, second={45}, timeout=50),
        cron(relay_job, second=set(range(60)), timeout=50),
        cron(expire_job, second=set(range(0, 60, 5)), timeout=50),
        # Money that is owed back and that no request returned (it crashed meanwhile).
        cron(refund_sweep, second=set(range(0, 60, 10)), timeout=50),
        # Energy points past their expiry (Ant Forest's uncollected energy), every minute.
        cron(expire_points, second={30}, timeout=50),
    ]
    on_startup = startup
    on_shutdown = shutdown
    queue_name = arq_queue_name(get_settings())
    redis_settings: RedisSettings = arq_redis_settings(get_settings())
    max_jobs = 50
    # How soon a queued job starts (arq's default is 0.5 s): a paid order's `order_paid`
    # reaches the room after this plus the settlement, and a backlog's helpers join sooner.
    poll_delay = 0.05
    job_timeout = 60
    # A job that dies with its worker is retried by another: every job is idempotent.
    max_tries = 10
    keep_result = 60
