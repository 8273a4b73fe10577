"""Settlement throughput: orders settled per second, batched vs one order per transaction,
and by real `panen worker` processes (1 and 2).

Orders are placed through the real `commerce.orders.service.place` and then marked paid as
the payment webhook leaves them; settlement then runs the real flow (`panen.flows.settle`):
status history, energy points, ledger postings, the charity's side (pledges, matches, the
transparency log) and the outbox. The baseline settles the same way but one order per
transaction.

    .venv/bin/python bench/settle.py [--orders 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import time
from dataclasses import replace

from flash_sale import add_listing, clear_redis, make_buyers, seed_session
from sqlalchemy import select, text

from commerce.orders import lifecycle as order_lifecycle
from commerce.orders.lifecycle import OrderStatus
from commerce.orders.models import Order
from commerce.orders.service import place
from commerce.payments import lifecycle as payment_lifecycle
from commerce.payments.lifecycle import PaymentStatus
from commerce.payments.models import Payment
from core.auth import Principal
from core.clock import utcnow
from core.services import Services
from core.settings import Settings
from panen.embedded import drop_database, ensure_database
from panen.flows.settle import settle_all, settle_batch
from panen.migrate import upgrade


async def paid_orders(services: Services, world: dict[str, str], n: int) -> list[str]:
    listing = await add_listing(services.db, world, n)
    buyers = await make_buyers(services.db, n)
    gate = asyncio.Semaphore(128)

    async def one(i: int) -> str:
        async with gate:
            order, _ = await place(
                services, Principal(buyers[i], frozenset({"viewer"})), listing, 1, f"s{i}"
            )
            return str(order["id"])

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def mark_paid(services: Services, ids: list[str]) -> None:
    """As the payment webhooks leave them (through the same lifecycles), in one go."""
    async with services.db.transaction() as s:
        orders = list(await s.scalars(select(Order).where(Order.id.in_(ids)).with_for_update()))
        now = utcnow()
        await order_lifecycle.move_many(s, orders, OrderStatus.RESERVED, OrderStatus.PAID, now)
        pays = list(await s.scalars(select(Payment.id).where(Payment.order_id.in_(ids))))
        await payment_lifecycle.move_many(
            s, pays, PaymentStatus.PENDING, PaymentStatus.SUCCEEDED, now
        )


async def analyze(services: Services) -> None:
    """Fresh planner statistics before each timed run, as autovacuum keeps them on a
    database with a history. Without them, plans cached while this new database's tables
    were nearly empty keep scanning the tables as every run makes them grow, and each row
    of the table would measure the bench's age rather than settlement."""
    async with services.db.transaction() as s:
        await s.execute(text("ANALYZE"))


async def any_paid(services: Services) -> bool:
    """Whether an order still waits to be settled (every order here is this bench's). An
    index probe: the poll runs 50 times a second on the cores the workers measure."""
    async with services.db.reader() as s:
        return bool(
            await s.scalar(text("SELECT EXISTS (SELECT 1 FROM orders WHERE status = 'paid')"))
        )


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "PANEN_ENV": "development",
        "PANEN_SOCKETS_PER_ADDRESS": "0",
        "PANEN_LOGINS_PER_ADDRESS": "0",
        "PANEN_REGISTRATIONS_PER_ADDRESS": "0",
        "PANEN_LOG_LEVEL": "WARNING",
    }


async def with_workers(services: Services, settings: Settings, ids: list[str], k: int) -> float:
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 (started once, before the clock runs)
            [sys.executable, "-m", "panen", "worker"], env=worker_env(settings)
        )
        for _ in range(k)
    ]
    try:
        await asyncio.sleep(4)  # let them start; the clock starts when the orders are paid
        t0 = time.perf_counter()
        await mark_paid(services, ids)
        await services.enqueue("settle_orders")
        while await any_paid(services):  # noqa: ASYNC110 (polling the database)
            await asyncio.sleep(0.02)
        return time.perf_counter() - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(15)


async def in_process(services: Services, world: dict[str, str], n: int, label: str) -> None:
    """A row: n paid orders settled by `settle_all` in this process."""
    ids = await paid_orders(services, world, n)
    await mark_paid(services, ids)
    await analyze(services)
    t0 = time.perf_counter()
    await settle_all(services)
    dt = time.perf_counter() - t0
    print(f"| {label} | {n:,} | {dt:.2f} | {n / dt:,.0f} |")


async def bench(settings: Settings, n: int) -> None:
    services = await Services.start(settings, pool_size=20)
    world = await seed_session(services.db)
    print(f"{n:,} paid orders per row; the same machine runs PostgreSQL and Redis\n")
    print("| how | orders | seconds | orders/s |")
    print("|---|---:|---:|---:|")
    try:
        base_n = max(200, n // 4)  # one transaction per order is slow; a quarter suffices
        ids = await paid_orders(services, world, base_n)
        await mark_paid(services, ids)
        await analyze(services)
        t0 = time.perf_counter()
        while await settle_batch(services, limit=1):
            pass
        dt = time.perf_counter() - t0
        print(
            f"| baseline: one order per transaction | {base_n:,} | {dt:.2f} | {base_n / dt:,.0f} |"
        )
        await in_process(services, world, n, "batched, in process")
        for k in (1, 2):
            ids = await paid_orders(services, world, n)
            await analyze(services)
            dt = await with_workers(services, settings, ids, k)
            print(
                f"| `panen worker` x{k} | {n:,} | {dt:.2f} "
                f"| {n / dt:,.0f} ({n / dt / k:,.0f} each) |"
            )
            sys.stdout.flush()
        async with services.db.reader() as s:
            bad = await s.scalar(
                text(
                    "SELECT count(*) FROM (SELECT transaction_id FROM ledger_postings"
                    " GROUP BY transaction_id HAVING sum(amount) <> 0) t"
                )
            )
            twice = await s.scalar(
                text(
                    "SELECT count(*) FROM (SELECT order_id FROM ledger_transactions"
                    " WHERE kind = 'sale' GROUP BY order_id HAVING count(*) > 1) t"
                )
            )
        print(f"\nunbalanced ledger transactions: {bad}; orders settled twice: {twice}")
    finally:
        await services.close()


def main(server: str, redis_url: str, n: int) -> None:
    tag = secrets.token_hex(3)
    name = f"panen_bench_settle_{tag}"
    url = ensure_database(server, name, fresh=True)
    settings = replace(
        Settings(), database_url=url, redis_url=redis_url, redis_prefix=f"panen_bench_{tag}"
    )
    try:
        upgrade(url)
        asyncio.run(bench(settings, n))
    finally:
        drop_database(server, name)
        asyncio.run(clear_redis(settings))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--orders", type=int, default=2000)
    a = p.parse_args()
    # The flow reads its energy rules from the environment's settings, as a worker does;
    # without a secret of its own the bench is a development machine.
    os.environ.setdefault("PANEN_ENV", "development")
    main(a.server, a.redis, a.orders)
