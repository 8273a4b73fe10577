"""The arq worker: its jobs, its cron, and the services each job uses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.cron import cron
from arq.worker import Worker, get_kwargs
from sqlalchemy.exc import DBAPIError

from commerce.outbox.tasks import relay_job
from commerce.payments.tasks import refund_sweep
from commerce.payouts.tasks import PAYOUT_HOUR_UTC, payout_run, payout_sweep
from commerce.stock.tasks import reconcile_holds, warm_counters
from core import heap
from core.clock import utcnow
from core.logging import configure_logging
from core.redis import UNREACHABLE
from core.services import Services, arq_keys_under, arq_queue_name, arq_redis_settings
from core.settings import get_settings
from donations.charity.tasks import sequence_log
from donations.energy.tasks import award_activity, expire_points
from donations.transparency.tasks import publish_checkpoint
from panen.flows.delivery import complete_deliveries
from panen.flows.expire import expire_job
from panen.flows.settle import settle_orders, settle_sweep
from panen.models import metadata

# Every table on the metadata, as in the web process: a flush resolves a foreign key (a
# payout's farmer) by its table, which only a model module's import registers.
metadata()

log = logging.getLogger("panen.worker")

HEARTBEAT_TTL_S = 30
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
STORES_DOWN: tuple[type[BaseException], ...] = (*UNREACHABLE, DBAPIError)


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    # With a job queue of its own: a settler that finds a backlog calls other workers in.
    ctx["services"] = await Services.start(settings, pool_size=5)
    ctx["heartbeat"] = asyncio.create_task(heartbeat(ctx["services"]))
    heap.settle()


async def shutdown(ctx: dict[str, Any]) -> None:
    if "heartbeat" in ctx:
        ctx["heartbeat"].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ctx["heartbeat"]
    services: Services | None = ctx.get("services")
    if services is None:
        return
    with contextlib.suppress(*UNREACHABLE):  # Redis may be the reason we stop
        await services.redis.zrem(services.keys("workers"), WORKER_ID)
    await services.close()


async def heartbeat(services: Services) -> None:
    """Tell the web processes (and /readyz) that this worker is alive: one sorted set of
    workers by when their beat runs out, so counting them is one command on one key (a
    SCAN of keys would have to visit every node of a cluster)."""
    key = services.keys("workers")
    while True:
        try:
            until = time.time() + HEARTBEAT_TTL_S
            await services.redis.zadd(key, {WORKER_ID: until})
            await services.redis.zremrangebyscore(key, "-inf", time.time())
        except Exception:  # Redis may be restarting; the next beat tries again
            log.warning("worker heartbeat failed", exc_info=True)
        await asyncio.sleep(HEARTBEAT_TTL_S / 3)


async def canary(ctx: dict[str, Any]) -> dict[str, str]:
    """A round trip through the queue: operators and tests enqueue it to see a worker answer."""
    return {"worker": WORKER_ID, "at": utcnow().isoformat()}


def _cron(coroutine: Any, **when: Any) -> Any:
    """A cron job named under REDIS_PREFIX: arq names each run's job `{name}:{time}`, and
    two deployments sharing a Redis would otherwise take each other's runs."""
    return cron(coroutine, name=f"{PREFIX}:{coroutine.__name__}", **when)


PREFIX = get_settings().redis_prefix
arq_keys_under(PREFIX)  # before arq makes its first key


class WorkerSettings:
    functions: ClassVar[list[Any]] = [canary, settle_orders, award_activity]
    cron_jobs: ClassVar[list[Any]] = [
        # The transparency log's cadence: a signed checkpoint every 15 s when it grew
        # (and at start, which also creates the signing key on a fresh machine).
        _cron(publish_checkpoint, second={0, 15, 30, 45}, run_at_startup=True, timeout=30),
        # Entries a crash left queued (a request sequences its own right after its commit).
        _cron(sequence_log, second=set(range(1, 60, 2)), run_at_startup=True, timeout=50),
        # Money path: settle what no job picked up (crash, lost enqueue), deliver the
        # outbox, and return the stock of reservations nobody paid for.
        _cron(settle_sweep, second=set(range(0, 60, 2)), run_at_startup=True, timeout=50),
        _cron(warm_counters, second={30}, run_at_startup=True, timeout=50),
        # Units held for orders that never landed (their request died mid-way), given
        # back within a minute (ORPHANED_AFTER_S and this cadence).
        _cron(reconcile_holds, second={15, 45}, timeout=25),
        _cron(relay_job, second=set(range(60)), timeout=50),
        _cron(expire_job, second=set(range(0, 60, 5)), timeout=50),
        # Money that is owed back and that no request returned (it crashed meanwhile).
        _cron(refund_sweep, second=set(range(0, 60, 10)), timeout=50),
        # Energy points past their expiry (Ant Forest's uncollected energy), every minute.
        _cron(expire_points, second={30}, timeout=50),
        # Farmers paid once a day; payouts a crash or a lost callback left, each minute.
        _cron(payout_run, hour={PAYOUT_HOUR_UTC}, minute={0}, second={0}, timeout=600),
        _cron(payout_sweep, second={50}, timeout=50),
        # Delivered boxes whose buyers' window passed complete: their money becomes final.
        _cron(complete_deliveries, second=set(range(0, 60, 5)), timeout=50),
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


class ResilientWorker(Worker):
    """arq's worker, but a lost Redis (restarted, failed over) is waited out with backoff
    instead of ending the process: its poll loop raises on the first failed round trip."""

    _backoff = 0.0

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except UNREACHABLE as exc:
            self._backoff = min(max(self._backoff * 2, 0.25), 5.0)
            log.warning("worker lost Redis (%s); retrying in %.2f s", exc, self._backoff)
            await asyncio.sleep(self._backoff)
        else:
            self._backoff = 0.0


def run() -> None:
    """`panen worker`: run until a signal stops it. A start that fails (Redis or PostgreSQL
    not there yet) is tried again with backoff, never given up on."""
    delay = 0.5
    while True:
        worker = ResilientWorker(**get_kwargs(WorkerSettings))  # type: ignore[arg-type]
        try:
            worker.run()
            return  # stopped by a signal
        except STORES_DOWN as exc:
            log.warning("worker could not start (%s); again in %.1f s", exc, delay)
        time.sleep(delay)
        delay = min(delay * 2, 10.0)
