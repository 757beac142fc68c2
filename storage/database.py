"""The database handle services share, plus the append-only audit log writer."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, cast
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import schema

# the Database whose write lock the running task holds (so that a nested write() in the same
# task does not wait for itself)
_writing: ContextVar[Database | None] = ContextVar("tongban_db_writing", default=None)

# the Databases with a direct connection, by their engine (what a connection leads back to)
_direct_dbs: WeakKeyDictionary[sa.Engine, Database] = WeakKeyDictionary()


def direct_for(conn: AsyncConnection) -> sqlite3.Connection | None:
    """The direct connection (``Database.direct``) of the Database this connection is from."""
    db = _direct_dbs.get(conn.sync_engine)
    return db.direct() if db is not None else None


class Database:
    def __init__(self, engine: AsyncEngine, *, direct: bool = False) -> None:
        """``direct`` (the server, SQLite file databases only): the call path's short reads
        and writes run on a connection of the event loop's own thread (``direct()``); the
        engine must be made with ``background_checkpoints``, as that connection never
        checkpoints the WAL itself."""
        self.engine = engine
        self._write_lock = asyncio.Lock()
        self._direct_wanted = direct and _sqlite_file(engine) is not None
        self._direct: sqlite3.Connection | None = None
        if self._direct_wanted:
            _direct_dbs[engine.sync_engine] = self

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def lazy(self) -> AsyncIterator[AsyncConnection]:
        """``begin()``, except that on the server's SQLite (``direct``) the pooled connection
        is taken only when a statement needs it (``LazyConnection``).

        The call path's reads and self-committing writes run on the loop's own connection
        (storage/sqlfast.py), so the pooled connection that begin() takes for them is mostly
        never used, and taking it, beginning, committing and giving it back costs ~115 us of
        the loop's time through SQLAlchemy's async adaptation: twice per call request +
        cancel. Elsewhere (PostgreSQL, no direct connection) this is begin()."""
        if not self._direct_wanted:
            async with self.begin() as conn:
                yield conn
            return
        async with AsyncExitStack() as stack:
            yield cast(AsyncConnection, LazyConnection(self, stack))

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that writes, for the hot paths (the call service, presence).

        SQLite has one writer at a time. Writers that meet its lock wait in its busy handler,
        which sleeps 1, 2, 5, 10, 15, 20, 25, 50, 100 ms between tries and lets a newcomer
        overtake a writer that has waited long: at 100 call requests/s on 5,000 staff a
        request then waited up to 6 s (bench/signaling). Here, on SQLite, the writers of
        this process queue for it in order instead and each is woken the moment the one
        before has committed. PostgreSQL locks rows, not the database: a plain begin()."""
        if not self._queues():
            async with self.engine.begin() as conn:
                yield conn
            return
        # the connection first, then the turn: the order writing() takes them in. The other
        # way round, a writer holding the turn waited for a pooled connection while every
        # pooled connection was held by a request waiting for the turn (bench/signaling,
        # a node hung during its first rollup)
        async with self.engine.connect() as conn, self._turn(), conn.begin():
            yield conn

    @asynccontextmanager
    async def writing(self, conn: AsyncConnection) -> AsyncIterator[None]:
        """The writes that end a transaction opened with begin(), after its reads: on
        SQLite queued as write() queues and committed before the next writer is let in (the
        reads before need no turn: they do not hold SQLite's write lock); elsewhere nothing,
        the transaction commits when begin() ends."""
        if not self._queues():
            yield
            return
        async with self._turn():
            try:
                yield
            except BaseException:
                await conn.rollback()  # before the next writer, who would meet SQLite's lock
                raise
            await conn.commit()

    def _queues(self) -> bool:
        """Whether a writer here waits for the turn: on SQLite, unless it holds it already."""
        return self.engine.dialect.name == "sqlite" and _writing.get() is not self

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        async with self._write_lock:
            token = _writing.set(self)
            try:
                yield
            finally:
                _writing.reset(token)

    async def checkpoint(self) -> tuple[int, int] | None:
        """On SQLite, copy what the WAL holds into the database file, beside the writers
        (PASSIVE: it waits for nobody); the WAL's pages and how many are now copied. None
        elsewhere. For an engine made with ``background_checkpoints`` (storage/db.py)."""
        if self.engine.dialect.name != "sqlite":
            return None
        async with self.engine.connect() as conn:
            row: Any = (await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")).one()
        return int(row[1]), int(row[2])  # (busy, pages in the WAL, pages copied)

    def direct(self) -> sqlite3.Connection | None:
        """A SQLite connection used on the event loop's thread, without aiosqlite (None
        unless asked for, and on other databases); storage/sqlfast.py runs the call path's
        statements on it.

        Why: every statement aiosqlite runs on its thread must take the GIL back from the
        event loop after each of sqlite3's calls, and the loop lets it go only every
        ``sys.getswitchinterval()`` (5 ms) while it is busy. A writer's turn that needed
        0.5 ms of SQLite held it for 10-12 ms at 50-100 call requests/s with 5,000 staff
        (bench/signaling, ``--instrument``), so the single writer was busy all the time and
        requests queued for seconds. Here the same statements take their 0.1-0.5 ms (a
        commit's fsync included) in the loop itself: the turn was held 1.7 ms on average at
        100 requests/s, busy 30 % of the time.

        Autocommit (transactions are begun explicitly), foreign keys on, FULL sync like the
        pool's, and no busy wait: a statement that meets another connection's lock fails at
        once with "database is locked" and the caller goes the pooled way instead."""
        if not self._direct_wanted:
            return None
        if self._direct is None:
            path = _sqlite_file(self.engine)
            assert path is not None
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the server's checkpoints do it
            self._direct = conn
        return self._direct

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None
        await self.engine.dispose()


class LazyConnection:
    """What ``Database.lazy()`` yields on the server's SQLite: a transaction whose pooled
    connection is begun only when a statement needs it. storage/sqlfast.py runs what it can
    on the loop's own connection without one; anything else (``execute``, ``scalar``...)
    takes it, and from then on the transaction is that connection's, committed or rolled
    back as ``begin()``'s is when the block ends."""

    def __init__(self, db: Database, stack: AsyncExitStack) -> None:
        self._db = db
        self._stack = stack
        self._conn: AsyncConnection | None = None
        self.dialect = db.engine.dialect
        self.sync_engine = db.engine.sync_engine

    @property
    def started(self) -> bool:
        """Whether the pooled connection has been taken."""
        return self._conn is not None

    def direct(self) -> sqlite3.Connection | None:
        return self._db.direct()

    async def connection(self) -> AsyncConnection:
        """The pooled connection, in a transaction: taken now if not yet."""
        if self._conn is None:
            self._conn = await self._stack.enter_async_context(self._db.engine.begin())
        return self._conn

    @property
    def sync_connection(self) -> sa.Connection | None:
        return self._conn.sync_connection if self._conn is not None else None

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await (await self.connection()).execute(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return await (await self.connection()).scalar(*args, **kwargs)

    async def scalars(self, *args: Any, **kwargs: Any) -> Any:
        return await (await self.connection()).scalars(*args, **kwargs)

    async def exec_driver_sql(self, *args: Any, **kwargs: Any) -> Any:
        return await (await self.connection()).exec_driver_sql(*args, **kwargs)

    async def commit(self) -> None:
        if self._conn is not None:
            await self._conn.commit()

    async def rollback(self) -> None:
        if self._conn is not None:
            await self._conn.rollback()


def _sqlite_file(engine: AsyncEngine) -> str | None:
    """The file of a SQLite database on disk (None for memory or another database)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return url.database


async def audit(
    conn: AsyncConnection,
    *,
    at: datetime,
    actor: str,
    action: str,
    result: str,
    actor_id: int | None = None,
    target: str = "",
    source: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit record in the caller's transaction, so the action and its record
    commit together or not at all."""
    await conn.execute(
        sa.insert(schema.audit_log).values(
            at=at,
            actor_id=actor_id,
            actor=actor[:60],
            action=action,
            target=target[:200],
            result=result,
            source=source[:64],
            detail=detail,
        )
    )
