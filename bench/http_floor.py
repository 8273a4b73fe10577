"""The HTTP layer's own cost: what two uvicorn processes, started with `panen serve`'s
settings, spend answering a flash sale's stampede when the app does no work.

Each variant is an ASGI app of a few lines in this file, answering every `POST` with 201
and an order-sized JSON body:

- `bare`: reads the body and parses its JSON;
- `token`: also reads the bearer token with `core.auth.Tokens`, as every first request of
  a user to a process does.

The load is `bench/flash_sale.py`'s: every buyer sends twice with one key, each copy to
a different server, 256 in flight over connections kept alive and opened before the
clock. Set against the `http` row of `bench/flash_sale.py` on the same machine, the
difference is what Starlette, our endpoint and the order itself cost.

    .venv/bin/python bench/http_floor.py [--buyers 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.flash_sale import KeepAlive, cpu_s, cpu_since, local_servers  # noqa: E402
from core import heap  # noqa: E402
from core.auth import Tokens  # noqa: E402

INFLIGHT = 256
VARIANTS = ("bare", "token")

# --- the app the servers run ------------------------------------------------------------

_ANSWER = orjson.dumps(
    {
        "order": {
            "id": "ord_01jd" + "0" * 22,
            **{f: "x" * 30 for f in ("session_id", "listing_id", "buyer_id", "farmer_id")},
            **{f: 15_000 for f in ("unit_price", "total", "farmer_amount", "fee_amount")},
            "status": "reserved",
            "expires_at": "2026-12-07T16:00:00.000Z",
            "created_at": "2026-12-07T15:50:00.000Z",
            "payment": {"id": "pay_01jd" + "0" * 22, "provider": "sandbox", "amount": 15_000},
            "history": [{"status": "reserved", "at": "2026-12-07T15:50:00.000Z"}],
        }
    }
)
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_ANSWER))]
_tokens: Tokens | None = None
_settled = False


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor: the body read and parsed, the token (if asked) read, a canned answer."""
    global _tokens, _settled
    if not _settled:  # the collector as a web process has it (core.heap)
        heap.settle()
        _settled = True
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    orjson.loads(body)
    if os.environ["FLOOR_VARIANT"] == "token":
        if _tokens is None:
            _tokens = Tokens(os.environ["PANEN_SECRET_KEY"], 3600)
        header = dict(scope["headers"]).get(b"authorization", b"")
        _tokens.read(header.decode().removeprefix("Bearer "))
    await send({"type": "http.response.start", "status": 201, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _ANSWER})


# --- the bench --------------------------------------------------------------------------


@contextmanager
def servers(variant: str, secret: str) -> Iterator[tuple[list[str], list[int]]]:
    """Two uvicorn processes with `panen serve`'s HTTP settings (httptools, uvloop)."""
    env = {**os.environ, "FLOOR_VARIANT": variant, "PANEN_SECRET_KEY": secret}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    args = ["-m", "uvicorn", "bench.http_floor:app", "--log-level", "warning"]
    args += ["--timeout-keep-alive", "75", "--lifespan", "off", "--port"]
    with local_servers(lambda port: [*args, str(port)], env, 2) as up:
        yield up


async def stampede(variant: str, buyers: int) -> tuple[float, float]:
    """(answers/s, server CPU ms per answer) of one stampede against fresh servers."""
    secret = secrets.token_hex(32)
    issuer = Tokens(secret, 3600)
    auth = [
        f"Bearer {issuer.issue(f'usr_{secrets.token_hex(13)}', ['viewer'])}" for _ in range(buyers)
    ]
    with servers(variant, secret) as (bases, pids):
        http = KeepAlive(INFLIGHT)
        await http.warm(bases)
        gate = asyncio.Semaphore(INFLIGHT)
        body = b'{"listing_id": "lst_01jd0000000000000000000000", "quantity": 1}'

        async def one(i: int, copy: int) -> None:
            async with gate:
                status, _ = await http.post(
                    bases[(i + copy) % 2],
                    "/api/orders",
                    {"Authorization": auth[i], "Idempotency-Key": f"k{i}"},
                    body,
                )
            assert status == 201, status

        before = cpu_s(pids)
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i, c) for i in range(buyers) for c in (0, 1)))
        wall = time.perf_counter() - t0
        cpu = cpu_since(before, pids)
        await http.close()
    return 2 * buyers / wall, 1000 * cpu / (2 * buyers)


async def bench(buyers: int, rounds: int) -> None:
    got: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    for _ in range(rounds):  # alternating: the machine's pace drifts
        for variant in VARIANTS:
            got[variant].append(await stampede(variant, buyers))
    print(f"{buyers:,} buyers, each sending twice, {INFLIGHT} in flight; medians of {rounds}:\n")
    print("| app | answers/s | min–max | server CPU ms/answer | min–max |")
    print("|---|---:|---:|---:|---:|")
    for variant in VARIANTS:
        rates, cpus = [r for r, _ in got[variant]], [c for _, c in got[variant]]
        print(
            f"| {variant} | {statistics.median(rates):,.0f} | {min(rates):,.0f}–{max(rates):,.0f} "
            f"| {statistics.median(cpus):.3f} | {min(cpus):.3f}–{max(cpus):.3f} |"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--buyers", type=int, default=4000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    asyncio.run(bench(a.buyers, a.rounds))
