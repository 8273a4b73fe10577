"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Literal, cast

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.http import ANYONE, Api, Ctx, json
from core.redis import ping_primaries
from core.shapes import NotRequired, TypedDict, closed

REQUESTS = Counter("panen_http_requests_total", "HTTP requests", ["endpoint", "method", "status"])
LATENCY = Histogram(
    "panen_http_request_seconds",
    "HTTP request latency",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

LOOP_LAG = Histogram(
    "panen_event_loop_lag_seconds",
    "How late the event loop woke a sleeper: CPU-bound work on the loop shows up here",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


async def watch_loop_lag(interval_s: float = 0.25) -> None:
    """Measure, forever, how much later than asked the loop runs a timer."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(interval_s)
        LOOP_LAG.observe(max(0.0, loop.time() - start - interval_s))


api = Api()


@closed
class Alive(TypedDict):
    status: Literal["ok"]


@closed
class Ready(TypedDict):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str]  # database, redis (and queue, on its own Redis): "ok" or the error
    workers: NotRequired[int]  # workers that reported in lately


@api.get("/healthz", ANYONE, response=Alive)
async def healthz(ctx: Ctx) -> Response:
    return json({"status": "ok"})


@api.get("/readyz", ANYONE, response=Ready)
async def readyz(ctx: Ctx) -> Response:
    checks: dict[str, str] = {}

    async def check(name: str, probe: Awaitable[object]) -> None:
        try:
            await asyncio.wait_for(probe, timeout=2.0)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}"

    probes = [
        check("database", ctx.services.db.ping()),
        check("redis", ping_primaries(ctx.services.redis)),  # each primary of a cluster
    ]
    if ctx.services.jobs is not None and ctx.services.settings.queue_url:
        probes.append(check("queue", ctx.services.jobs.ping()))  # a Redis of its own
    await asyncio.gather(*probes)
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "unavailable", "checks": checks}
    if ready:
        # Workers are not needed to serve, but an operator wants to see that they run.
        workers = ctx.services.redis.zcount(ctx.services.keys("workers"), time.time(), "+inf")
        body["workers"] = await cast(Awaitable[int], workers)
    return json(body, 200 if ready else 503)


@api.get("/metrics", ANYONE)
async def metrics(ctx: Ctx) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts requests and their latency by endpoint name (never by raw path: ids would
    make the label set unbounded)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            endpoint = scope.get("endpoint")
            name = getattr(endpoint, "__name__", "unmatched")
            REQUESTS.labels(name, scope["method"], str(status)).inc()
            LATENCY.labels(name).observe(time.perf_counter() - start)
