"""Transparency log: appends per second, and proof cost as the log grows (10^4 … 10^6).

    .venv/bin/python bench/transparency.py [--server postgresql://postgres@127.0.0.1:5432/postgres]
                                          [--max-size 1000000] [--writers]

Runs in a fresh database of its own (migrated to head, so the append-only triggers are
measured too) and drops it at the end. Baselines in the same run:
- appends: the same row written to a plain table with no log (no lock, no subtree hashes);
- `--writers`: the money path as it is (entries queued, then sequenced in shared passes)
  against the one it replaced (the head locked from the append to the commit);
- proofs: the root rebuilt from every leaf hash, which is what a log without stored
  subtrees would have to do for each proof.
The large trees are bulk-loaded through the real `append_many` (same hashing and rows as
single appends, in batches under one lock), not by a shortcut.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import time

from sqlalchemy import text

from core.db import Database
from donations.charity.sequencer import Sequencer
from donations.transparency import checkpoint, log, merkle, signing
from panen.embedded import drop_database, ensure_database
from panen.migrate import upgrade


def entry(i: int) -> dict[str, object]:
    return {
        "id": f"don_{i:026d}",
        "amount": 50_000 + i % 977,
        "currency": "IDR",
        "charity_id": "chr_bench",
        "donor": secrets.token_hex(32),
        "at": "2026-11-21T09:30:00Z",
    }


async def sequential_appends(db: Database, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        async with db.transaction() as s:
            await log.append(s, "donation", f"bench:seq:{secrets.token_hex(8)}:{i}", entry(i))
    return n / (time.perf_counter() - t0)


async def concurrent_appends(db: Database, workers: int, each: int) -> float:
    async def worker(w: int) -> None:
        for i in range(each):
            async with db.transaction() as s:
                await log.append(
                    s, "donation", f"bench:conc:{secrets.token_hex(8)}:{w}:{i}", entry(i)
                )

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return workers * each / (time.perf_counter() - t0)


async def money_appends(db: Database, workers: int, each: int) -> float:
    """Each append inside a transaction that goes on after it, as a charity movement's does
    (the ledger's and the fund's rows): the head's lock is held until that commit."""

    async def worker(w: int) -> None:
        for i in range(each):
            async with db.transaction() as s:
                await log.append(
                    s, "donation", f"bench:money:{secrets.token_hex(8)}:{w}:{i}", entry(i)
                )
                for k in range(3):
                    await s.execute(
                        text("INSERT INTO bench_plain (ref, entry, leaf) VALUES (:r, '', '')"),
                        {"r": f"money:{secrets.token_hex(8)}:{w}:{i}:{k}"},
                    )

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return workers * each / (time.perf_counter() - t0)


PROCESSES = 2  # web processes, each with its own sequencer, their passes racing for the head


async def queued_appends(db: Database, workers: int, each: int) -> tuple[float, list[float]]:
    """The money path as it is: the movement queues its entry, writes its other rows and
    commits (no head lock); its process's sequencer gives the entry its index in a shared
    pass while the writer goes on (as a webhook answers without waiting). Counted when
    every entry is in the log; also each entry's wait from its commit to its index (ms)."""
    sequencers = [Sequencer(db) for _ in range(PROCESSES)]
    waits: list[float] = []
    passes: list[asyncio.Task[None]] = []

    async def indexed(seq: Sequencer, ref: str, committed: float) -> None:
        got = await seq.sequence([ref])
        assert ref in got, "an entry was not sequenced"
        waits.append((time.perf_counter() - committed) * 1e3)

    async def worker(w: int) -> None:
        for i in range(each):
            ref = f"bench:queued:{secrets.token_hex(8)}:{w}:{i}"
            async with db.transaction() as s:
                await log.queue(s, [log.NewEntry("donation", ref, entry(i))])
                for k in range(3):
                    await s.execute(
                        text("INSERT INTO bench_plain (ref, entry, leaf) VALUES (:r, '', '')"),
                        {"r": f"queued:{secrets.token_hex(8)}:{w}:{i}:{k}"},
                    )
            seq = sequencers[w % PROCESSES]
            passes.append(asyncio.create_task(indexed(seq, ref, time.perf_counter())))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    await asyncio.gather(*passes)
    return workers * each / (time.perf_counter() - t0), waits


async def unlogged_money(db: Database, workers: int, each: int) -> float:
    """The same transaction with no log at all (its entry as a plain row): the ceiling."""

    async def worker(w: int) -> None:
        for i in range(each):
            async with db.transaction() as s:
                for k in range(4):
                    await s.execute(
                        text("INSERT INTO bench_plain (ref, entry, leaf) VALUES (:r, '', '')"),
                        {"r": f"unlogged:{secrets.token_hex(8)}:{w}:{i}:{k}"},
                    )

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return workers * each / (time.perf_counter() - t0)


async def scaling(db: Database, each: int) -> None:
    """Appends/s from 1 to 16 concurrent writers (sessions), against plain inserts."""
    print("## charity movements by concurrent writers (one entry per transaction)\n")
    print(
        "| writers | plain INSERT/s | log append/s | 4 writes, no log/s"
        " | append + 3 writes/s (head held to commit) | queued + 3 writes, sequenced/s"
        " | queued vs held | queued vs no log | commit to index p50 / p99 ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers in (1, 2, 4, 8, 16):
        base = await baseline_inserts(db, each * workers, workers=workers)
        bare = await concurrent_appends(db, workers, each)
        ceiling = await unlogged_money(db, workers, each)
        money = await money_appends(db, workers, each)
        queued, waits = await queued_appends(db, workers, each)
        p50, p99 = statistics.median(waits), statistics.quantiles(waits, n=100)[98]
        print(
            f"| {workers} | {base:,.0f} | {bare:,.0f} | {ceiling:,.0f} | {money:,.0f}"
            f" | {queued:,.0f} | {queued / money:.2f}x | {queued / ceiling:.2f}"
            f" | {p50:.0f} / {p99:.0f} |"
        )
        sys.stdout.flush()


async def baseline_inserts(db: Database, n: int, workers: int = 1) -> float:
    async with db.transaction() as s:
        await s.execute(
            text(
                "CREATE TABLE IF NOT EXISTS bench_plain"
                " (id bigserial PRIMARY KEY, ref text UNIQUE, entry text, leaf bytea)"
            )
        )

    async def worker(w: int) -> None:
        for i in range(n // workers):
            raw = log.canonical_json(entry(i))
            async with db.transaction() as s:
                await s.execute(
                    text("INSERT INTO bench_plain (ref, entry, leaf) VALUES (:r, :e, :l)"),
                    {
                        "r": f"{secrets.token_hex(8)}:{w}:{i}",
                        "e": raw.decode(),
                        "l": merkle.leaf_hash(raw),
                    },
                )

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return n / (time.perf_counter() - t0)


async def bulk_load(db: Database, target: int, batch: int = 5000) -> float:
    async with db.reader() as s:
        size, _ = await log.head(s)
    start, t0 = size, time.perf_counter()
    while size < target:
        n = min(batch, target - size)
        items = [
            log.NewEntry("donation", f"bench:bulk:{size + i}", entry(size + i)) for i in range(n)
        ]
        async with db.transaction() as s:
            await log.append_many(s, items)
        size += n
    elapsed = time.perf_counter() - t0
    return (size - start) / elapsed if elapsed > 0 else 0.0


async def time_proofs(db: Database, size: int, samples: int) -> dict[str, float]:
    rng = random.Random(size)
    async with db.reader() as s:
        root = await log.root_at(s, size)
    incl, cons, verify, rows = [], [], [], []
    for _ in range(10):  # warm the connections' statement caches first
        async with db.reader() as s:
            await log.inclusion_proof(s, rng.randrange(size), size)
    for _ in range(samples):
        i = rng.randrange(size)
        t0 = time.perf_counter()
        async with db.reader() as s:
            proof = await log.inclusion_proof(s, i, size)
            [row] = await log.entries(s, i, i + 1)
        incl.append(time.perf_counter() - t0)
        rows.append(len(merkle.nodes_needed(merkle.inclusion_ranges(i, size))))
        t0 = time.perf_counter()
        merkle.verify_inclusion(i, size, bytes(row.leaf_hash), proof, root)
        verify.append(time.perf_counter() - t0)
        m = rng.randrange(1, size)
        t0 = time.perf_counter()
        async with db.reader() as s:
            await log.consistency_proof(s, m, size)
        cons.append(time.perf_counter() - t0)
    return {
        "inclusion_ms": statistics.median(incl) * 1e3,
        "inclusion_p95_ms": sorted(incl)[int(0.95 * len(incl))] * 1e3,
        "consistency_ms": statistics.median(cons) * 1e3,
        "verify_us": statistics.median(verify) * 1e6,
        "rows": statistics.mean(rows),
        "proof_len": float(len(merkle.inclusion_ranges(size // 2, size))),
    }


async def rebuild_root(db: Database, size: int) -> float:
    """The baseline: read every leaf hash and fold the tree, as a store-nothing log must."""
    t0 = time.perf_counter()
    async with db.reader() as s:
        rows = await s.execute(
            text("SELECT leaf_hash FROM tlog_entries WHERE idx < :n ORDER BY idx"), {"n": size}
        )
        peaks: list[bytes] = []
        for i, (leaf,) in enumerate(rows):
            peaks, _ = merkle.append_to_peaks(i, peaks, bytes(leaf))
    merkle.root_from_peaks(peaks)
    return (time.perf_counter() - t0) * 1e3


async def bench(url: str, max_size: int, samples: int, writers_only: bool) -> None:
    db = Database(url, pool_size=16)
    try:
        if writers_only:
            await scaling(db, 200)
        else:
            await run(db, max_size, samples)
    finally:
        await db.close()


def main(server: str, max_size: int, samples: int, writers_only: bool) -> None:
    name = f"panen_bench_tlog_{secrets.token_hex(3)}"
    url = ensure_database(server, name, fresh=True)
    try:
        upgrade(url)
        asyncio.run(bench(url, max_size, samples, writers_only))
    finally:
        drop_database(server, name)


async def run(db: Database, max_size: int, samples: int) -> None:
    print("## appends (one entry per transaction, each its own commit)\n")
    print("| what | entries/s |")
    print("|---|---:|")
    base1 = await baseline_inserts(db, 2000)
    seq = await sequential_appends(db, 2000)
    base8 = await baseline_inserts(db, 4000, workers=8)
    conc = await concurrent_appends(db, 8, 500)
    print(f"| baseline: plain INSERT, 1 client | {base1:,.0f} |")
    print(f"| log append, 1 client | {seq:,.0f} |")
    print(f"| baseline: plain INSERT, 8 clients | {base8:,.0f} |")
    print(f"| log append, 8 clients (serialised on the head lock) | {conc:,.0f} |")

    key = signing.SigningKey.generate()
    print("\n## proofs as the log grows (median of", samples, "random indexes)\n")
    print(
        "| entries | bulk load entries/s | subtree rows read | proof hashes | inclusion ms "
        "(p95) | consistency ms | verify µs | checkpoint ms | baseline: rebuild root ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in (10**4, 10**5, 10**6):
        if size > max_size:
            break
        rate = await bulk_load(db, size)
        async with db.reader() as s:
            current, _ = await log.head(s)
        t0 = time.perf_counter()
        ck = await checkpoint.publish(db, key)
        ck_ms = (time.perf_counter() - t0) * 1e3
        assert ck.size == current
        r = await time_proofs(db, current, samples)
        rebuild = await rebuild_root(db, current)
        print(
            f"| {current:,} | {rate:,.0f} | {r['rows']:.1f} | {r['proof_len']:.0f} | "
            f"{r['inclusion_ms']:.2f} ({r['inclusion_p95_ms']:.2f}) | {r['consistency_ms']:.2f} "
            f"| {r['verify_us']:.0f} | {ck_ms:.1f} | {rebuild:,.0f} |"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--max-size", type=int, default=10**6)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--writers", action="store_true", help="only appends by 1-16 writers")
    a = p.parse_args()
    main(a.server, a.max_size, a.samples, a.writers)
