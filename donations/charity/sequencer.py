"""The transparency log's sequencer: a charity movement's entry gets its index after the
money transaction that queued it commits, in a batch with every other committed entry.

A money transaction used to append under the log head's row lock and hold it until it
committed, so every charity movement of every room queued behind one lock (docs/scaling.md).
Now it queues its entries (`Journal.write`, no lock) and, after its commit, has a pass of
the sequencer run: one short transaction that takes the head, integrates everything
committed, releases the outbox rows whose events name those entries, and commits. A flow
whose answer names an index waits for the pass (`sequence`); the others do not (`soon`). The
callers of one process share passes (a call waits for the first pass that starts after it,
which sees its commit), so under load one pass carries many movements. What a crash left
queued, the worker's sweep integrates within seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from commerce.outbox import service as outbox
from core.batching import Batcher
from core.db import Database
from core.services import Services
from donations.transparency import log as tlog

log = logging.getLogger("panen.transparency")

PASS = 2000  # entries per transaction


async def integrate(s: AsyncSession, limit: int = PASS) -> tlog.Integrated:
    """One pass in the caller's transaction: queued entries into the log, and the outbox
    rows held for them released."""
    done = await tlog.integrate(s, limit)
    await outbox.entries_known(s, done.written)
    return done


class Sequencer:
    """A process's sequencer: concurrent callers share passes (a call waits for the first
    pass that starts after it, which sees its commit)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._batcher: Batcher[tuple[str, ...], dict[str, int]] = Batcher(
            self._passes, max_batch=100_000, max_in_flight=1
        )

    async def sequence(self, refs: Sequence[str]) -> dict[str, int]:
        """A pass (or a share of one); returns the index of each of `refs` in the log."""
        return await self._batcher.submit(tuple(refs))

    async def _passes(self, wanted: list[tuple[str, ...]]) -> list[dict[str, int]]:
        """Integrate until the queue is drained (at most a few passes); the last pass also
        reads the indexes of the callers' refs that another process wrote."""
        refs = {r for refs in wanted for r in refs}
        written: dict[str, int] = {}
        for _ in range(10):
            got, drained = await self.db.run(lambda s: _pass(s, refs - written.keys()))
            written.update(got)
            if drained:
                break
        return [{r: written[r] for r in refs if r in written} for refs in wanted]


async def _pass(s: AsyncSession, refs: set[str]) -> tuple[dict[str, int], bool]:
    """One pass; once the queue is drained, also the indexes of `refs` written before
    (the head is held: whatever committed is seen). Returns (ref -> index, drained)."""
    done = await integrate(s)
    got = done.written
    if not done.drained:
        return got, False
    return got | await tlog.indexes_of(s, refs - got.keys()), True


def _sequencer(services: Services) -> Sequencer:
    return services.shared("donations.charity.sequencer", lambda: Sequencer(services.db))


async def sequence(services: Services, refs: Sequence[str]) -> dict[str, int]:
    """After a commit that queued log entries: wait for a pass that includes them; returns
    the index of each of `refs` that is in the log. Never raises: a committed change is
    not reported as failed for this, and what cannot be sequenced now (the database
    going away) the sweep integrates."""
    if not refs:
        return {}
    try:
        return await _sequencer(services).sequence(refs)
    except Exception:
        log.warning("log entries left queued for the sweep", exc_info=True)
        return {}


def soon(services: Services, refs: Sequence[str]) -> None:
    """After a commit whose answer does not name its entries' indexes (a payment webhook,
    a refund): sequence them in this process's next pass, in the background, then send
    the events the outbox held for them. The caller answers without waiting for the
    pass; if the process dies first, the worker's sweep logs them."""
    if not refs:
        return
    tasks: set[asyncio.Task[None]] = services.shared("donations.charity.sequencer.soon", set)
    task = asyncio.get_running_loop().create_task(_sequence_and_send(services, list(refs)))
    tasks.add(task)  # the loop keeps only a weak reference
    task.add_done_callback(tasks.discard)


async def _sequence_and_send(services: Services, refs: list[str]) -> None:
    await sequence(services, refs)
    await outbox.deliver(services)


async def catch_up(services: Services) -> None:
    """A pass for entries nobody waits on by ref (a settlement batch's pledges), and the
    worker's sweep of what a crash or a database outage left queued. Never raises."""
    try:
        await _sequencer(services).sequence(())
    except Exception:
        log.warning("log entries left queued for the next sweep", exc_info=True)
