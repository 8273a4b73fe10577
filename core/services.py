"""What a process holds once: settings, database, Redis, key builder, job queue, tokens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import arq.connections
import arq.constants
import arq.jobs
import arq.worker
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import Job

from core.auth import Tokens
from core.db import Database
from core.identity import Identities
from core.redis import Client, Keys, create_redis
from core.redis import close as close_redis
from core.settings import Settings

T = TypeVar("T")


def arq_queue_name(settings: Settings) -> str:
    return f"{settings.redis_prefix}:arq:queue"


_ARQ_KEYS = (
    "job_key_prefix",
    "in_progress_key_prefix",
    "result_key_prefix",
    "retry_key_prefix",
    "abort_jobs_ss",
)
_ARQ_DEFAULTS = {name: str(getattr(arq.constants, name)) for name in _ARQ_KEYS}


def arq_keys_under(prefix: str) -> None:
    """arq names its keys from module constants (`arq:job:…`, `arq:result:…`); put them
    under REDIS_PREFIX, so that deployments (or test runs) sharing one Redis never see each
    other's jobs. Patching module constants is sound here because a process has exactly
    one prefix, set before its first job."""
    for name, default in _ARQ_DEFAULTS.items():
        for module in (arq.constants, arq.connections, arq.jobs, arq.worker):
            if hasattr(module, name):
                setattr(module, name, f"{prefix}:{default}")


def queue_url(settings: Settings) -> str:
    """The job queue's Redis: PANEN_QUEUE_URL, else the one Redis of REDIS_URL."""
    return settings.queue_url or settings.redis_url


def arq_redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(queue_url(settings))


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: Client
    keys: Keys
    tokens: Tokens
    identities: Identities
    jobs: ArqRedis | None = None
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    def shared(self, name: str, make: Callable[[], T]) -> T:
        """This process's one instance of something built on these services (a batcher, a
        cache), made on first use; it lives and dies with them."""
        found = self._shared.get(name)
        if found is None:
            found = self._shared[name] = make()
        return cast(T, found)

    @classmethod
    async def start(
        cls, settings: Settings, *, pool_size: int | None = None, jobs: bool = True
    ) -> Services:
        db = Database(
            settings.database_url,
            pool_size=pool_size or settings.db_pool_size,
            pool_timeout_s=settings.db_pool_timeout_s,
            strict=settings.db_strict,
            replica_url=settings.database_replica_url,
        )
        tokens = Tokens(settings.secret_key, settings.token_ttl_s)
        services = cls(
            settings=settings,
            db=db,
            redis=create_redis(settings.redis_url),
            keys=Keys(settings.redis_prefix),
            tokens=tokens,
            identities=Identities(db, tokens),
        )
        if jobs:
            arq_keys_under(settings.redis_prefix)
            services.jobs = await create_pool(
                arq_redis_settings(settings), default_queue_name=arq_queue_name(settings)
            )
        return services

    async def enqueue(self, function: str, *args: Any, job_id: str | None = None) -> Job | None:
        """Queue a background job; `job_id` makes the enqueue itself idempotent (a job with
        the same id already queued or kept gives None)."""
        if self.jobs is None:
            raise RuntimeError("this process has no job queue")
        return await self.jobs.enqueue_job(function, *args, _job_id=job_id)

    async def close(self) -> None:
        for thing in self._shared.values():  # a gateway's HTTP client …
            closer = getattr(thing, "aclose", None)
            if closer is not None:
                await closer()
        if self.jobs is not None:
            await self.jobs.aclose()
        await close_redis(self.redis)
        await self.db.close()
