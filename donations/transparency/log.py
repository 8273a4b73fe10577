"""The append-only log: canonical entries, gap-free appends, and proofs from stored subtrees.

Two ways in, both under the log head's row lock, so indexes never skip or fork:

- `queue` (the money path): the transaction that moves the money writes its entries to a
  queue table, taking no lock; if it rolls back, its entries roll back with it. `integrate`
  (the sequencer, its own short transaction) then takes the head lock, gives every
  committed queued entry its index in queue order, writes the entries, the perfect
  subtrees they complete and the new head, and deletes what it took: one lock and one
  commit for a whole batch, as Trillian and Tessera integrate their queues, instead of
  every money transaction holding the head from its append until its commit.
- `append_many` (a disbursement, a bench's bulk load): appends inside the caller's
  transaction, holding the head until it ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from sqlalchemy import CursorResult, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from donations.transparency import merkle
from donations.transparency.models import LogEntry, LogHead, LogNode, QueuedEntry

HEAD_ID = 1

_log = logging.getLogger("panen.transparency")


class EntryError(ValueError):
    """An entry that cannot be written canonically (a float, a non-string key …)."""


def _check(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise EntryError(f"{path}: floats have no canonical form; use integers")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise EntryError(f"{path}: keys must be strings")
            _check(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check(v, f"{path}[{i}]")
    elif not (value is None or isinstance(value, str | int | bool)):
        raise EntryError(f"{path}: {type(value).__name__} is not a JSON value")


def canonical_json(value: dict[str, Any]) -> bytes:
    """Sorted keys at every depth, no spaces, UTF-8 (not \\u-escaped), integers only."""
    _check(value, "entry")
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class Appended:
    index: int
    leaf_hash: bytes
    entry: str


@dataclass(frozen=True, slots=True)
class NewEntry:
    kind: str
    ref: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IndexOf:
    """A top-level field's value to be: the index of another entry, known only once that
    one is sequenced (a match names the gift it matches, a reversal the pledge it takes
    back). The entry it names is in the same call, or was queued or appended before."""

    ref: str


def _split_peaks(blob: bytes) -> list[bytes]:
    return [blob[i : i + merkle.HASH_SIZE] for i in range(0, len(blob), merkle.HASH_SIZE)]


async def _lock_head(session: AsyncSession) -> tuple[int, list[bytes]]:
    stmt = select(LogHead.size, LogHead.peaks).where(LogHead.id == HEAD_ID).with_for_update()
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        # The migration seeds the head; this covers databases made from the models alone.
        await session.execute(
            pg_insert(LogHead)
            .values(id=HEAD_ID, size=0, peaks=b"")
            .on_conflict_do_nothing(index_elements=[LogHead.id])
        )
        row = (await session.execute(stmt)).one()
    return int(row.size), _split_peaks(bytes(row.peaks))


async def append(session: AsyncSession, kind: str, ref: str, data: dict[str, Any]) -> Appended:
    """Append one entry `{**data, "kind": kind}` in the caller's transaction."""
    return (await append_many(session, [NewEntry(kind, ref, data)]))[0]


ENTRY_COLUMNS = (
    ("idx", "bigint"),
    ("ref", "text"),
    ("kind", "text"),
    ("entry", "text"),
    ("leaf_hash", "bytea"),
)
NODE_COLUMNS = (("level", "smallint"), ("idx", "bigint"), ("hash", "bytea"))


async def append_many(session: AsyncSession, items: Sequence[NewEntry]) -> list[Appended]:
    """Append several entries under one lock, in order, inside the caller's transaction."""
    if not items:
        return []
    size, peaks = await _lock_head(session)
    known = await indexes_of(session, _named(items) - {i.ref for i in items})
    written, waiting = await _write(session, size, peaks, items, known)
    if waiting:
        raise EntryError(f"{waiting[0].ref} names an entry that is not in the log")
    return [a for _, a in written]


def _named(items: Sequence[NewEntry]) -> set[str]:
    """The refs whose indexes these entries name."""
    return {v.ref for i in items for v in i.data.values() if isinstance(v, IndexOf)}


async def indexes_of(session: AsyncSession, refs: set[str]) -> dict[str, int]:
    """The indexes of those of these refs that are in the log."""
    if not refs:
        return {}
    rows = await session.execute(
        text("SELECT ref, idx FROM tlog_entries WHERE ref = ANY(:r)"), {"r": sorted(refs)}
    )
    return {r.ref: int(r.idx) for r in rows}


async def _write(
    session: AsyncSession,
    size: int,
    peaks: list[bytes],
    items: Sequence[NewEntry],
    known: dict[str, int],
    queued: dict[str, int] | None = None,
) -> tuple[list[tuple[NewEntry, Appended]], list[NewEntry]]:
    """Give `items` the next indexes, in order, with the head locked. An entry that names
    one not written yet goes after it; one that names an entry nowhere to be found waits
    (for `integrate`'s next pass). Writes entries, subtrees and head, and takes what it
    wrote off the queue (`queued`: ref -> queue id), in one statement; returns what it
    wrote, with its index, and what waits."""
    at_index = dict(known)
    entry_rows: list[dict[str, Any]] = []
    node_rows: list[dict[str, Any]] = []
    out: list[tuple[NewEntry, Appended]] = []
    pending = list(items)
    while pending:
        waiting: list[NewEntry] = []
        for item in pending:
            names = [v.ref for v in item.data.values() if isinstance(v, IndexOf)]
            if any(ref not in at_index for ref in names):
                waiting.append(item)
                continue
            data = {
                k: at_index[v.ref] if isinstance(v, IndexOf) else v for k, v in item.data.items()
            }
            raw = canonical_json({**data, "kind": item.kind})
            leaf = merkle.leaf_hash(raw)
            peaks, nodes = merkle.append_to_peaks(size, peaks, leaf)
            entry = raw.decode()
            entry_rows.append(
                {"idx": size, "ref": item.ref, "kind": item.kind, "entry": entry, "leaf_hash": leaf}
            )
            node_rows.extend({"level": k[0], "idx": k[1], "hash": h} for k, h in nodes)
            out.append((item, Appended(size, leaf, entry)))
            at_index[item.ref] = size
            size += 1
        if len(waiting) == len(pending):  # no progress: what is left names the unknown
            break
        pending = waiting
    else:
        waiting = []
    if out:
        done = [queued[item.ref] for item, _ in out] if queued else []
        params: dict[str, Any] = {"size": size, "peaks": b"".join(peaks), "done": done}
        params |= {f"e_{name}": [r[name] for r in entry_rows] for name, _ in ENTRY_COLUMNS}
        params |= {f"n_{name}": [r[name] for r in node_rows] for name, _ in NODE_COLUMNS}
        await session.execute(_WRITE, params)
    return out, waiting


def _unnest(prefix: str, columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"CAST(:{prefix}{name} AS {kind}[])" for name, kind in columns)


# One round trip for a pass's writes (its share of the head lock's time).
_WRITE = text(
    "WITH entries AS (INSERT INTO tlog_entries (idx, ref, kind, entry, leaf_hash)"  # noqa: S608 (our own names)
    f"  SELECT * FROM unnest({_unnest('e_', ENTRY_COLUMNS)})),"
    " nodes AS (INSERT INTO tlog_nodes (level, idx, hash)"
    f"  SELECT * FROM unnest({_unnest('n_', NODE_COLUMNS)})),"
    " dequeued AS (DELETE FROM tlog_queue WHERE id = ANY(CAST(:done AS bigint[])))"
    f" UPDATE tlog_head SET size = :size, peaks = :peaks WHERE id = {HEAD_ID}"
)


# --- The queue and its sequencer ------------------------------------------------------------

QUEUE_COLUMNS = (("ref", "text"), ("kind", "text"), ("data", "jsonb"), ("names", "jsonb"))


async def queue(session: AsyncSession, items: Sequence[NewEntry]) -> None:
    """Queue entries in the caller's transaction, in order, taking no lock. Each must be
    writable canonically (checked now, so a bad entry fails the money movement, not the
    sequencer); `IndexOf` fields are kept apart, by name, until sequenced."""
    if not items:
        return
    rows = []
    for item in items:
        plain = {k: v for k, v in item.data.items() if not isinstance(v, IndexOf)}
        names = {k: v.ref for k, v in item.data.items() if isinstance(v, IndexOf)}
        canonical_json({**plain, **dict.fromkeys(names, 0), "kind": item.kind})
        rows.append(
            {
                "ref": item.ref,
                "kind": item.kind,
                "data": orjson.dumps(plain).decode(),
                "names": orjson.dumps(names).decode(),
            }
        )
    # One movement is logged once: a ref already in the log fails the money movement, as
    # a second queued one does (both tables hold refs uniquely). One statement for both.
    written = await session.execute(
        text(
            "INSERT INTO tlog_queue (ref, kind, data, names)"
            " SELECT q.ref, q.kind, q.data, q.names FROM unnest(CAST(:ref AS text[]),"
            " CAST(:kind AS text[]), CAST(:data AS jsonb[]), CAST(:names AS jsonb[]))"
            " WITH ORDINALITY AS q(ref, kind, data, names, n)"
            " WHERE NOT EXISTS (SELECT 1 FROM tlog_entries e WHERE e.ref = q.ref)"
            " ORDER BY q.n"
        ),
        {name: [r[name] for r in rows] for name, _ in QUEUE_COLUMNS},
    )
    if cast(CursorResult[Any], written).rowcount != len(rows):
        raise EntryError("this movement is in the log already")


@dataclass(frozen=True, slots=True)
class Integrated:
    written: dict[str, int]  # ref -> index
    drained: bool  # fewer than the limit were queued: nothing committed is left behind


async def integrate(session: AsyncSession, limit: int = 2000) -> Integrated:
    """Sequence up to `limit` committed queued entries into the log, oldest first, in the
    caller's (short) transaction.

    Queue order keeps every name resolvable: an entry names one queued earlier in its own
    transaction, or one whose transaction committed before it could lock what it reverses."""
    size, peaks = await _lock_head(session)
    # Read after the lock: every queue row committed by now is seen, none taken twice.
    rows = (
        await session.execute(
            text(
                "SELECT q.id, q.ref, q.kind, q.data, q.names, e.idx AS logged"
                " FROM tlog_queue q LEFT JOIN tlog_entries e ON e.ref = q.ref"
                " ORDER BY q.id LIMIT :n"
            ).columns(data=JSONB, names=JSONB),
            {"n": limit},
        )
    ).all()
    if not rows:
        return Integrated({}, drained=True)
    # `queue` refuses a ref already logged; one that raced past it is dropped, not written
    # twice (and not left to block every pass after it).
    twice = {r.ref for r in rows if r.logged is not None}
    if twice:
        _log.error("queued log entries already in the log, dropped: %s", sorted(twice))
    items = [
        NewEntry(r.kind, r.ref, {**r.data, **{k: IndexOf(v) for k, v in r.names.items()}})
        for r in rows
        if r.ref not in twice
    ]
    known = await indexes_of(session, _named(items) - {i.ref for i in items})
    written, waiting = await _write(
        session, size, peaks, items, known, queued={r.ref: r.id for r in rows}
    )
    if waiting:  # cannot happen by the order above; kept queued, and said loudly
        _log.error("log entries wait for entries not in the log: %s", [w.ref for w in waiting])
    if twice:
        await session.execute(
            text("DELETE FROM tlog_queue WHERE id = ANY(:ids)"),
            {"ids": [r.id for r in rows if r.ref in twice]},
        )
    return Integrated({item.ref: a.index for item, a in written}, drained=len(rows) < limit)


async def backlog(session: AsyncSession) -> tuple[int, float]:
    """How many committed entries wait to be sequenced, and the oldest one's age (s)."""
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(
                    func.extract("epoch", func.now() - func.min(QueuedEntry.created_at)), 0
                ),
            ).select_from(QueuedEntry)
        )
    ).one()
    return int(row[0]), float(row[1])


# --- Reading. Nodes are never changed once written, so plain reads see a stable tree. ---


async def head(session: AsyncSession) -> tuple[int, bytes]:
    """The committed size and root, from the head's peaks (no lock taken)."""
    row = (
        await session.execute(select(LogHead.size, LogHead.peaks).where(LogHead.id == HEAD_ID))
    ).one_or_none()
    if row is None:
        return 0, merkle.EMPTY_ROOT
    return int(row.size), merkle.root_from_peaks(_split_peaks(bytes(row.peaks)))


async def fetch_nodes(
    session: AsyncSession, keys: Iterable[merkle.NodeKey]
) -> dict[merkle.NodeKey, bytes]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await session.execute(
        select(LogNode.level, LogNode.idx, LogNode.hash).where(
            tuple_(LogNode.level, LogNode.idx).in_(wanted)
        )
    )
    return {(int(r.level), int(r.idx)): bytes(r.hash) for r in rows}


async def _resolve(session: AsyncSession, ranges: Sequence[merkle.Range]) -> list[bytes]:
    nodes = await fetch_nodes(session, merkle.nodes_needed(ranges))
    return merkle.resolve(ranges, nodes)


async def root_at(session: AsyncSession, size: int) -> bytes:
    """The root of the tree's first `size` leaves, folded from at most log2(size) rows."""
    if size == 0:
        return merkle.EMPTY_ROOT
    return (await _resolve(session, [(0, size)]))[0]


async def inclusion_proof(session: AsyncSession, index: int, size: int) -> list[bytes]:
    return await _resolve(session, merkle.inclusion_ranges(index, size))


async def consistency_proof(session: AsyncSession, first: int, second: int) -> list[bytes]:
    return await _resolve(session, merkle.consistency_ranges(first, second))


async def entries(session: AsyncSession, start: int, end: int) -> list[LogEntry]:
    rows = await session.execute(
        select(LogEntry).where(LogEntry.idx >= start, LogEntry.idx < end).order_by(LogEntry.idx)
    )
    return list(rows.scalars())


async def entry_by_ref(session: AsyncSession, ref: str) -> LogEntry | None:
    return (await session.execute(select(LogEntry).where(LogEntry.ref == ref))).scalar_one_or_none()
