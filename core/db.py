"""The async SQLAlchemy engine, sessions, and the declarative base every model uses."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, String, TextClause, func, make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint names are stable across autogenerate runs and readable in error messages.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# The column type of every id (`ord_…`, `ses_…`): opaque strings of at most 40 characters.
ID = String(40)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


def async_url(url: str) -> str:
    """Accept `postgresql://…` (as operators write it) and pick our async driver."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+asyncpg"):
        u = u.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {u.drivername}")
    return u.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # Each connection gets its own statement cache; a prepared statement goes stale
        # after a migration, which pre-ping does not catch, hence a modest size.
        connect_args={"statement_cache_size": 256},
    )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Which transactions a consistent read saw (PostgreSQL's `pg_current_snapshot()`).

    Events carry the id of the transaction that wrote them (`pg_current_xact_id()`), so a
    reader can tell exactly whether a read already counted an event, whatever the clocks
    say and in whatever order the transactions committed."""

    xmin: int
    xmax: int
    running: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        xmin, xmax, running = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in running.split(",") if x))

    def __str__(self) -> str:
        return f"{self.xmin}:{self.xmax}:{','.join(str(x) for x in sorted(self.running))}"

    def sees(self, xid: int) -> bool:
        """Whether this snapshot saw transaction `xid`'s writes (pg_visible_in_snapshot)."""
        if xid < self.xmin:
            return True
        if xid >= self.xmax:
            return False
        return xid not in self.running


class Database:
    """The engine and a session factory, created once per process."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.engine = create_engine(url, pool_size=pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # The session of an open `snapshot()` block, which `reader()` hands out inside it.
        self._pinned: ContextVar[AsyncSession | None] = ContextVar("pinned", default=None)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        """One consistent read: inside this block every `reader()` (in this task) uses one
        REPEATABLE READ transaction, so reads made by separate functions all see the same
        committed state; yields which transactions that state includes."""
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="REPEATABLE READ")
            async with AsyncSession(bind=conn, expire_on_commit=False) as session:
                seen = await session.scalar(text("SELECT pg_current_snapshot()::text"))
                token = self._pinned.set(session)
                try:
                    yield Snapshot.parse(str(seen))
                finally:
                    self._pinned.reset(token)
                    await session.rollback()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        pinned = self._pinned.get()
        if pinned is not None:  # inside snapshot(): the same transaction for every read
            yield pinned
            return
        async with self.sessions() as session:
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def close(self) -> None:
        await self.engine.dispose()


Columns = tuple[tuple[str, str], ...]  # (name, PostgreSQL type) of each column written


@functools.lru_cache(maxsize=128)
def _unnest_insert(table: str, columns: Columns, suffix: str) -> TextClause:
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in columns)
    return text(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {suffix}")  # noqa: S608 (our own names)


async def insert_rows(
    s: AsyncSession,
    table: str,
    columns: Columns,
    rows: Sequence[Mapping[str, Any]],
    suffix: str = "",
) -> None:
    """Insert many rows with one statement: `INSERT … SELECT FROM unnest(arrays)`.

    An executemany runs the statement once per row inside PostgreSQL (each with its own
    executor start, parameters and round of checks); a settlement batch writes some two
    thousand rows, and that per-row cost was a large part of the database's share.
    `suffix` may add e.g. `ON CONFLICT DO NOTHING`."""
    if rows:
        stmt = _unnest_insert(table, columns, suffix)
        await s.execute(stmt, {name: [r[name] for r in rows] for name, _ in columns})
