"""The append-only log: canonical entries, gap-free appends, and proofs from stored subtrees.

`append` runs inside the caller's transaction (the one that moves the money), takes the
log head's row lock, and writes the entry, the perfect subtrees it completes and the new
head. Another appender waits on the lock until this transaction ends: indexes never skip
or fork, and if the money movement rolls back its entry rolls back with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import insert_rows
from donations.transparency import merkle
from donations.transparency.models import LogEntry, LogHead, LogNode

HEAD_ID = 1


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
    """A field's value to be: the index of an earlier entry of the same `append_many` call
    (a match names the gift it matches), known only once the head is locked."""

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
    """Append several entries under one lock, in order (also the bulk loader of benches)."""
    if not items:
        return []
    # An entry's text and leaf hash do not depend on its index: made before the lock,
    # which concurrent appenders wait on until this transaction ends (only entries that
    # name another's index wait for it).
    later = [any(isinstance(v, IndexOf) for v in item.data.values()) for item in items]
    texts: list[bytes | None] = [
        None if wait else canonical_json({**item.data, "kind": item.kind})
        for item, wait in zip(items, later, strict=True)
    ]
    leaves = [None if text is None else merkle.leaf_hash(text) for text in texts]
    size, peaks = await _lock_head(session)
    at_index = {item.ref: size + n for n, item in enumerate(items)}
    entry_rows: list[dict[str, Any]] = []
    node_rows: list[dict[str, Any]] = []
    out: list[Appended] = []
    for item, text, leaf in zip(items, texts, leaves, strict=True):
        if text is None or leaf is None:
            data = {
                k: at_index[v.ref] if isinstance(v, IndexOf) else v for k, v in item.data.items()
            }
            text = canonical_json({**data, "kind": item.kind})
            leaf = merkle.leaf_hash(text)
        peaks, nodes = merkle.append_to_peaks(size, peaks, leaf)
        decoded = text.decode()
        entry_rows.append(
            {"idx": size, "ref": item.ref, "kind": item.kind, "entry": decoded, "leaf_hash": leaf}
        )
        node_rows.extend({"level": k[0], "idx": k[1], "hash": h} for k, h in nodes)
        out.append(Appended(size, leaf, decoded))
        size += 1
    await insert_rows(session, "tlog_entries", ENTRY_COLUMNS, entry_rows)
    await insert_rows(session, "tlog_nodes", NODE_COLUMNS, node_rows)
    await session.execute(
        update(LogHead).where(LogHead.id == HEAD_ID).values(size=size, peaks=b"".join(peaks))
    )
    return out


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
