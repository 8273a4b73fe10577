"""The async SQLAlchemy engine, sessions, and the declarative base every model uses."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, MetaData, String, TextClause, event, func, make_url, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
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


log = logging.getLogger("panen.db")
T = TypeVar("T")

# PostgreSQL aborts one transaction of a deadlock (40P01) or a serialization conflict
# (40001): nothing of it committed, and running it again from the start is safe.
RETRYABLE = frozenset({"40P01", "40001"})


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error: SQLAlchemy's wraps the driver's (`orig`)."""
    orig = getattr(exc, "orig", exc)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state if isinstance(state, str) else None


# PostgreSQL shutting down, restarting or out of connections (57P01-03, 53300), and every
# connection exception (class 08): the server is away for now.
AWAY = frozenset({"57P01", "57P02", "57P03", "53300"})


def is_transient(exc: BaseException) -> bool:
    """A deadlock, a serialization conflict, an exhausted pool, or PostgreSQL away (a lost
    connection, a restart): the client may try again (HTTP answers 503 with Retry-After).
    Nothing committed, or, for a connection lost during a commit, the client's retry with
    its idempotency key finds what did."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        state = sqlstate(exc) or ""
        return (
            exc.connection_invalidated
            or state in RETRYABLE
            or state in AWAY
            or state.startswith("08")
            or _lost_connection(exc.orig)
        )
    return False


def _lost_connection(error: BaseException | None) -> bool:
    """Whether the driver's error was caused by the connection itself going away (a reset
    socket, a socket file gone while the server restarts): its code is not always set."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, OSError) or (sqlstate(error) or "").startswith("08"):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


class NestedConnectionError(RuntimeError):
    """A task asked the pool for a second connection while holding one: with a busy pool
    every such task waits on the others and the process freezes."""


def create_engine(url: str, *, pool_size: int = 10, pool_timeout_s: float = 2.0) -> AsyncEngine:
    """`pool_timeout_s`: how long a request waits for a pooled connection before it is told
    to come back (503) rather than queue behind a pool that is not draining."""
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout_s,
        # Each connection gets its own statement cache; a prepared statement goes stale
        # after a migration, hence a modest size.
        connect_args={"statement_cache_size": 256},
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


def _refuse_closed(dbapi_connection: DBAPIConnection, record: Any, proxy: Any) -> None:
    """Pool checkout: a connection the server has closed is not handed out.

    In place of SQLAlchemy's pre-ping, which for asyncpg is three round trips (BEGIN, an
    empty query, ROLLBACK) on every checkout: a tenth of a web process's CPU in a flash
    sale. PostgreSQL closes its sockets when it stops, restarts or terminates a backend,
    and asyncpg marks a connection closed as soon as the loop reads that: a flag to look
    at, no round trip. The pool then opens a fresh connection in its place and renews
    every older one (InvalidatePoolError), as a failed pre-ping would. A connection lost
    with no close seen (a cable cut) fails its statement instead: SQLAlchemy renews the
    pool, and the request answers 503."""
    if dbapi_connection.driver_connection.is_closed():
        raise InvalidatePoolError("the server closed this pooled connection")


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

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_timeout_s: float = 2.0,
        strict: bool = False,
        replica_url: str = "",
    ) -> None:
        self.engine = create_engine(url, pool_size=pool_size, pool_timeout_s=pool_timeout_s)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # A streaming replica for reads that tolerate a little lag (`lagging()`), if any.
        self.replica_engine = (
            create_engine(replica_url, pool_size=pool_size, pool_timeout_s=pool_timeout_s)
            if replica_url
            else None
        )
        # The session of an open `snapshot()` block, which `reader()` hands out inside it.
        self._pinned: ContextVar[AsyncSession | None] = ContextVar("pinned", default=None)
        # Whether this task holds a pooled connection now; `strict` (the tests) raises on
        # a second one, production logs it.
        self._holding: ContextVar[bool] = ContextVar("holding", default=False)
        self.strict = strict

    @asynccontextmanager
    async def _hold(self) -> AsyncIterator[None]:
        if self._holding.get():
            err = NestedConnectionError("this task already holds a database connection")
            if self.strict:
                raise err
            log.error("nested database connection", exc_info=err)
        token = self._holding.set(True)
        try:
            yield
        finally:
            self._holding.reset(token)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        """One consistent read: inside this block every `reader()` (in this task) uses one
        REPEATABLE READ transaction, so reads made by separate functions all see the same
        committed state; yields which transactions that state includes."""
        async with self._hold(), self.engine.connect() as conn:
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
        async with self._hold(), self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one statement on its own, in autocommit: PostgreSQL runs a lone
        statement (its CTEs included) atomically, so BEGIN and COMMIT or ROLLBACK would
        only add two round trips. For the batchers of the hot path (the order writer, the
        identity reads), which run in tasks of their own, outside any caller's connection."""
        async with self.engine.connect() as conn:
            # Client-side for asyncpg (no round trip), and undone when the pool takes it back.
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]], attempts: int = 4) -> T:
        """`work` in one transaction, run again from the start when PostgreSQL aborted it
        to break a deadlock or a serialization conflict (nothing of it had committed)."""
        for attempt in range(1, attempts + 1):
            try:
                async with self.transaction() as session:
                    return await work(session)
            except DBAPIError as exc:
                if sqlstate(exc) not in RETRYABLE or attempt == attempts:
                    raise
                log.info("transaction retried after %s", sqlstate(exc))
                await asyncio.sleep(random.uniform(0, 0.02 * attempt))
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        pinned = self._pinned.get()
        if pinned is not None:  # inside snapshot(): the same transaction for every read
            yield pinned
            return
        async with self._hold(), self.sessions() as session:
            yield session

    @asynccontextmanager
    async def lagging(self) -> AsyncIterator[AsyncSession]:
        """A read that may be a little behind the primary (lists, public reports): from the
        replica when there is one and it answers, else as `reader()`. Whatever must see the
        caller's own writes reads through `reader()`."""
        if self.replica_engine is None or self._pinned.get() is not None:
            async with self.reader() as session:
                yield session
            return
        async with self._hold():
            session = AsyncSession(bind=self.replica_engine, expire_on_commit=False)
            try:
                await session.connection()  # the replica answers, or the primary serves
            except (DBAPIError, OSError, TimeoutError) as exc:
                await session.close()
                log.warning("replica unavailable, reading from the primary: %s", exc)
                session = self.sessions()
            try:
                yield session
            finally:
                await session.close()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def close(self) -> None:
        await self.engine.dispose()
        if self.replica_engine is not None:
            await self.replica_engine.dispose()


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
