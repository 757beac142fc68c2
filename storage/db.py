"""Opening the SQL database and bringing its schema up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def _skip_idle_ends(engine: AsyncEngine) -> None:
    """On aiosqlite, every commit and rollback is a hand-off to the connection's thread and
    back (0.3-0.5 ms on these machines), also when there is nothing to end: the pool rolls
    back every connection it gets back, after a commit too, and the call path commits its
    writes together with them (storage/sqlfast.py). Here a commit or rollback with no
    transaction open on the driver (``sqlite3.Connection.in_transaction``, which aiosqlite
    reads without a hand-off) is skipped: sqlite3 itself does nothing in that case."""
    dialect = engine.sync_engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def open_(dbapi_conn: Any) -> bool:
        driver = getattr(dbapi_conn, "driver_connection", None)
        return driver is None or bool(driver.in_transaction)

    def do_commit(dbapi_conn: Any) -> None:
        if open_(dbapi_conn):
            commit(dbapi_conn)

    def do_rollback(dbapi_conn: Any) -> None:
        if open_(dbapi_conn):
            rollback(dbapi_conn)

    dialect.do_commit = do_commit  # type: ignore[method-assign,assignment]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign,assignment]


def create_engine(url: str, *, background_checkpoints: bool = False, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, foreign keys and a busy timeout on every connection.

    ``background_checkpoints`` (the server, which runs ``Database.checkpoint`` every second):
    SQLite's automatic checkpoint is off. It runs inside the commit that fills the WAL past
    1,000 pages, copying them into the database file and syncing it, so one writer in
    ~1,000 pages (a few seconds of call requests) took tens to hundreds of ms to commit, and
    the writers queued behind it (storage/database.py) waited as long. A checkpoint of its own
    runs beside the writers instead."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # enough pooled connections for the call path's concurrent transactions: past the
        # pool (5 by default) each one is an aiosqlite thread started, set up with the pragmas
        # below and joined again
        kwargs.setdefault("pool_size", 20)
        kwargs.setdefault("max_overflow", 20)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _skip_idle_ends(engine)

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if background_checkpoints:
                cur.execute("PRAGMA wal_autocheckpoint=0")
            # FULL: a commit is on disk before the action is reported done (DESIGN.md, "Data
            # that must never be lost"); NORMAL could lose the last commits at a power cut
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        return engine
    # JIT compilation costs hundreds of ms on the report's queries and never pays off for
    # this workload's short statements (bench/report)
    kwargs.setdefault("connect_args", {"server_settings": {"jit": "off"}})
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def migrate(engine: AsyncEngine) -> None:
    """Apply every Alembic migration not yet applied (``tongban serve`` does this at start)."""

    def _upgrade(conn: sa.Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def current_revision(conn: AsyncConnection) -> str | None:
    def _rev(sync: sa.Connection) -> str | None:
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(sync).get_current_revision()

    return await conn.run_sync(_rev)
