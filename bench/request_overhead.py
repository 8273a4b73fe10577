"""What every request pays before its own work: finding its route, and taking a pooled
database connection. Each against what it replaced, in the same run.

- Routing: Starlette's router tries each route's pattern in order until one matches;
  `panen.app.Routes` tries only those whose leading literal segments fit the path.
- Checkout: SQLAlchemy's pre-ping (for asyncpg: BEGIN, an empty query, ROLLBACK) on
  every checkout, against `core.db`'s look at asyncpg's closed flag. Each sample is a
  checkout and one `SELECT 1` in autocommit, as the order writer and identity reads run.
- Reading a bearer token a process has not seen yet (every buyer's first request to it):
  PyJWT's decode with the options the server used, against `core.auth.Tokens`'s own.
- An order's three-way split (`core.money.allocate`): with Fractions, as it was, against
  integer division.

    .venv/bin/python bench/request_overhead.py [--checkouts 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction

import jwt
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match

from core.auth import Tokens
from core.db import async_url, create_engine
from core.money import allocate
from core.settings import Settings
from panen.app import Routes, create_app

# Hot paths of a live sale, with the method each is called with.
PATHS = (
    ("POST", "/api/orders"),
    ("GET", "/api/orders/ord_01h0000000000000000000000"),
    ("POST", "/api/donations"),
    ("GET", "/api/sessions/ses_01h0000000000000000000000"),
    ("GET", "/healthz"),
    ("GET", "/sessions/ses_01h0000000000000000000000"),
)


def first_full(routes: list[BaseRoute], scope: dict[str, object]) -> tuple[BaseRoute, int]:
    for tried, route in enumerate(routes, 1):
        if route.matches(scope)[0] is Match.FULL:
            return route, tried
    raise LookupError(scope["path"])


def per_call_us(fn: Callable[[], object], n: int, rounds: int) -> float:
    """Median over rounds of the mean µs per call."""
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples)


def routing(rounds: int) -> None:
    settings = replace(Settings(), secret_key=secrets.token_hex(32))
    router = create_app(settings).router
    assert isinstance(router, Routes)
    print(f"Routing among {len(router.routes)} routes (µs per request, median of {rounds}):\n")
    print("| request | routes tried: Starlette | Routes | µs: Starlette | Routes | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for method, path in PATHS:
        scope = {"type": "http", "path": path, "root_path": "", "method": method}
        expected, tried_all = first_full(router.routes, scope)
        found, tried_ours = first_full(router.candidates(get_route_path(scope)), scope)
        assert found is expected, path
        scan = per_call_us(lambda s=scope: first_full(router.routes, s), 5_000, rounds)
        ours = per_call_us(
            lambda s=scope: first_full(router.candidates(get_route_path(s)), s), 5_000, rounds
        )
        print(
            f"| {method} {path} | {tried_all} | {tried_ours} | {scan:.2f} | {ours:.2f} "
            f"| {scan / ours:.1f}x |"
        )


def tokens(rounds: int) -> None:
    secret = secrets.token_hex(32)
    reader = Tokens(secret, 3600)
    token = reader.issue("usr_01h0000000000000000000000", ["viewer"])

    def pyjwt() -> object:
        return jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["sub", "exp", "iat"]}
        )

    def ours() -> object:
        return reader._decode(token)  # the check itself, not the per-process memory of it

    assert pyjwt() == ours()
    before, now = per_call_us(pyjwt, 5_000, rounds), per_call_us(ours, 5_000, rounds)
    print(f"\nReading a token not seen before (µs, median of {rounds}):\n")
    print("| PyJWT decode | core.auth | ratio |")
    print("|---:|---:|---:|")
    print(f"| {before:.1f} | {now:.1f} | {before / now:.1f}x |")


def fractions_allocate(total: int, weights: list[int]) -> list[int]:
    """`core.money.allocate` as it was: the exact shares as Fractions."""
    shares = [Fraction(total * w, sum(weights)) for w in weights]
    parts = [s.numerator // s.denominator for s in shares]
    order = sorted(range(len(weights)), key=lambda i: -(shares[i] - parts[i]))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def splits(rounds: int) -> None:
    # 15,000 at a 1% pledge and a 10% fee, weights scaled by 10,000 as pricing.split does.
    total, weights = 15_000, [1_500_000, 133_500_000, 15_000_000]
    assert fractions_allocate(total, weights) == allocate(total, weights)
    before = per_call_us(lambda: fractions_allocate(total, weights), 20_000, rounds)
    now = per_call_us(lambda: allocate(total, weights), 20_000, rounds)
    print(f"\nAn order's split (µs, median of {rounds}):\n")
    print("| Fractions | integer division | ratio |")
    print("|---:|---:|---:|")
    print(f"| {before:.1f} | {now:.1f} | {before / now:.1f}x |")


async def checkouts(engine: AsyncEngine, n: int) -> float:
    """Mean µs of a checkout and one autocommit `SELECT 1`, n in a row."""
    t0 = time.perf_counter()
    for _ in range(n):
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("SELECT 1"))
    return (time.perf_counter() - t0) / n * 1e6


async def checkout(url: str, n: int, rounds: int) -> None:
    pinged = create_async_engine(
        async_url(url), pool_size=1, pool_pre_ping=True, connect_args={"statement_cache_size": 256}
    )
    flagged = create_engine(url, pool_size=1)
    samples: dict[str, list[float]] = {"pre-ping": [], "closed flag": []}
    try:
        for engine in (pinged, flagged):  # connect and prepare before measuring
            await checkouts(engine, 50)
        for _ in range(rounds):  # alternating: the machine's pace drifts
            samples["pre-ping"].append(await checkouts(pinged, n))
            samples["closed flag"].append(await checkouts(flagged, n))
    finally:
        await pinged.dispose()
        await flagged.dispose()
    base = statistics.median(samples["pre-ping"])
    print(f"\nCheckout and one statement ({n} in a row, median of {rounds} alternating):\n")
    print("| liveness check | round trips | µs (median) | min–max | vs pre-ping |")
    print("|---|---:|---:|---:|---:|")
    for name, trips in (("pre-ping", 4), ("closed flag", 1)):
        got = samples[name]
        print(
            f"| {name} | {trips} | {statistics.median(got):.0f} "
            f"| {min(got):.0f}–{max(got):.0f} | {statistics.median(got) / base:.2f}x |"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--checkouts", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    routing(a.rounds)
    tokens(a.rounds)
    splits(a.rounds)
    asyncio.run(checkout(a.database, a.checkouts, a.rounds))
