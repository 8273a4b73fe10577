"""The transparency log's sequencer: a charity movement's entry gets its index after the
money transaction that queued it commits, in a batch with every other committed entry.

A money transaction used to append under the log head's row lock and hold it until it
committed, so every charity movement of every room queued behind one lock (docs/scaling.md).
Now it queues its entries (`Journal.write`, no lock) and, after its commit, waits here for
a pass of the sequencer: one short transaction that takes the head, integrates everything
committed, releases the outbox rows whose events name those entries, and commits. The
callers of one process share passes (a call waits for the first pass that starts after it,
which sees its commit), so under load one pass carries many movements. What a crash left
queued, the worker's sweep integrates within seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.outbox import service as outbox
from core.batching import Batcher
from core.services import Services
from donations.transparency import log as tlog

log = logging.getLogger("panen.transparency")

PASS = 2000  # entries per transaction


async def integrate(s: AsyncSession, limit: int = PASS) -> dict[str, int]:
    """One pass in the caller's transaction: queued entries into the log, and the outbox
    rows held for them released. Returns ref -> index of what it wrote."""
    indexes = await tlog.integrate(s, limit)
    await outbox.entries_known(s, indexes)
    return indexes


async def _passes(services: Services, wanted: list[tuple[str, ...]]) -> list[dict[str, int]]:
    """Integrate until the queue is drained (at most a few passes), then tell each caller
    the index of each of its refs, read back for those another process sequenced."""
    written: dict[str, int] = {}
    for _ in range(10):
        got = await services.db.run(integrate)
        written.update(got)
        if len(got) < PASS:
            break
    refs = {r for refs in wanted for r in refs} - written.keys()
    if refs:
        async with services.db.reader() as s:
            rows = await s.execute(
                text("SELECT ref, idx FROM tlog_entries WHERE ref = ANY(:r)"), {"r": sorted(refs)}
            )
            written.update({r.ref: int(r.idx) for r in rows})
    return [{r: written[r] for r in refs if r in written} for refs in wanted]


def _sequencer(services: Services) -> Batcher[tuple[str, ...], dict[str, int]]:
    return services.shared(
        "donations.charity.sequencer",
        lambda: Batcher(
            lambda wanted: _passes(services, wanted), max_batch=100_000, max_in_flight=1
        ),
    )


async def sequence(services: Services, refs: Sequence[str] = ()) -> dict[str, int]:
    """After a commit that queued log entries: wait for a pass that includes them; returns
    the index of each of `refs` that is in the log. Never raises: a committed change is
    not reported as failed for this, and what cannot be sequenced now (the database
    going away) the sweep integrates."""
    if not refs:
        return {}
    try:
        return await _sequencer(services).submit(tuple(refs))
    except Exception:
        log.warning("log entries left queued for the sweep", exc_info=True)
        return {}


async def catch_up(services: Services) -> None:
    """A pass for entries nobody waits on by ref (a settlement batch's pledges), and the
    worker's sweep of what a crash or a database outage left queued. Never raises."""
    try:
        await _sequencer(services).submit(())
    except Exception:
        log.warning("log entries left queued for the next sweep", exc_info=True)
