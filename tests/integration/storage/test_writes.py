"""The write path on the real databases (issue 7): SQLite writers of a node queue for the
single writer in order instead of sleeping in SQLite's busy handler; the call path's changes
go to aiosqlite's thread in one hand-off, committed with them when asked, and a
compare-and-set that misses writes nothing after it; commits and rollbacks with nothing to
end cost no hand-off. On PostgreSQL the same calls behave as plain transactions."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import schema as s
from storage import sqlfast
from storage.database import Database
from storage.db import create_engine

NOTE = s.audit_log  # any table the writes can touch: an append-only one with few columns


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(create_engine(database_url))
    yield database
    await database.close()


def _row(n: int) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "at": datetime(2026, 11, 28, 12, tzinfo=UTC),
        "actor": f"t{n}",
        "action": "test",
        "result": "ok",
        "target": "",
        "source": "",
    }


INSERT = sa.insert(NOTE)


async def _actors(db: Database) -> list[str]:
    async with db.connect() as conn:
        query = sa.select(NOTE.c.actor).where(NOTE.c.action == "test").order_by(NOTE.c.id)
        return list(await conn.scalars(query))


class HandOffs:
    """Counts the jobs aiosqlite's threads run (every statement, commit and rollback)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import aiosqlite.core

        self.count = 0
        original = aiosqlite.core.Connection._execute

        async def counted(conn: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(conn, fn, *args, **kwargs)

        monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)


async def test_writers_take_turns_in_order_and_a_nested_write_does_not_wait(
    db: Database, backend: str
) -> None:
    order: list[int] = []

    async def writer(n: int) -> None:
        async with db.write() as conn:
            order.append(n)
            await sqlfast.change(conn, INSERT, _row(n))
            async with db.write() as inner:  # same task: does not wait for its own turn
                assert await inner.scalar(sa.select(1)) == 1
            await asyncio.sleep(0.01)  # others arrive meanwhile and queue

    async def pooled() -> None:  # eight pooled connections, so that none is opened below
        async with db.connect() as conn:
            await conn.scalar(sa.select(1))
            await asyncio.sleep(0.05)

    await asyncio.gather(*(pooled() for _ in range(8)))
    tasks = []
    for n in range(8):
        tasks.append(asyncio.create_task(writer(n)))
        await asyncio.sleep(0)  # each writer asks for its turn after the one before
    await asyncio.gather(*tasks)
    if backend == "sqlite":
        assert order == list(range(8)), "FIFO: nobody overtaken"
    assert sorted(await _actors(db)) == sorted(f"t{n}" for n in range(8))


async def test_writing_commits_at_its_end_and_rolls_back_on_error(db: Database) -> None:
    async with db.begin() as conn:
        async with db.writing(conn):
            await sqlfast.change(conn, INSERT, _row(1))
        # committed before the transaction ends: another connection sees it
        assert await _actors(db) == ["t1"] or db.dialect != "sqlite"
    with pytest.raises(RuntimeError):
        async with db.begin() as conn, db.writing(conn):
            await sqlfast.change(conn, INSERT, _row(2))
            raise RuntimeError("refused")
    assert await _actors(db) == ["t1"]
    async with db.write() as conn:  # the turn was given back
        await sqlfast.change(conn, INSERT, _row(3))
    assert await _actors(db) == ["t1", "t3"]


async def test_changes_run_in_one_hand_off_and_commit_with_them(
    db: Database, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = HandOffs(monkeypatch)
    async with db.begin() as conn, db.writing(conn):
        before = counter.count
        counts = await sqlfast.changes(
            conn, [(INSERT, _row(1)), (INSERT, [_row(2), _row(3)])], commit=True
        )
        if backend == "sqlite":
            assert counter.count - before == 1, "one trip to aiosqlite's thread"
            assert await _actors(db) == ["t1", "t2", "t3"], "committed in that trip"
    assert counts[0] == 1  # (an executemany's count is the driver's: asyncpg gives -1)
    assert await _actors(db) == ["t1", "t2", "t3"]


async def test_a_missed_compare_and_set_writes_nothing_after_it(db: Database) -> None:
    missing = sa.update(NOTE).where(NOTE.c.actor == sa.bindparam("b_actor")).values(result="x")
    with pytest.raises(LookupError):
        async with db.begin() as conn, db.writing(conn):
            counts = await sqlfast.changes(
                conn, [(missing, {"b_actor": "nobody"}), (INSERT, _row(1))],
                commit=True, first_changes=1,
            )  # fmt: skip
            assert counts == [0]
            raise LookupError("the call moved on")
    assert await _actors(db) == []


@pytest.mark.parametrize("backend", ["sqlite"])  # aiosqlite's hand-offs: SQLite only
async def test_ending_nothing_costs_no_hand_off(
    db: Database, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with db.connect() as conn:  # a pooled connection exists
        await conn.scalar(sa.select(1))
    counter = HandOffs(monkeypatch)
    async with db.connect() as conn:
        await sqlfast.fetch(conn, sa.select(NOTE.c.id).where(NOTE.c.id == sa.bindparam("i")),
                            {"i": 1})  # fmt: skip
    assert counter.count == 1, "the query only: no rollback when the pool takes it back"
    async with db.begin() as conn, db.writing(conn):
        await sqlfast.changes(conn, [(INSERT, _row(1))], commit=True)
    assert counter.count == 2, "the changes with their commit: no second commit, no rollback"
    async with db.begin() as conn:
        await sqlfast.change(conn, INSERT, _row(2))
    assert counter.count == 4, "a change, then its commit"
    assert await _actors(db) == ["t1", "t2"]


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL has no WAL file to copy
async def test_the_servers_checkpoint_runs_beside_the_writers(
    database_url: str, backend: str
) -> None:
    """With background checkpoints the commits never copy the WAL themselves (SQLite's
    automatic checkpoint is off); Database.checkpoint copies all of it."""
    db = Database(create_engine(database_url, background_checkpoints=True))
    try:
        async with db.connect() as conn:
            assert await conn.scalar(sa.text("PRAGMA wal_autocheckpoint")) == 0
        for n in range(300):  # more than SQLite's 1,000-page threshold would let pile up
            async with db.write() as conn:
                await conn.execute(INSERT, [_row(n)] * 20)
        pages, copied = await db.checkpoint() or (0, 0)
        assert pages > 0 and copied == pages
    finally:
        await db.close()
    plain = Database(create_engine(database_url))
    try:
        async with plain.connect() as conn:
            assert await conn.scalar(sa.text("PRAGMA wal_autocheckpoint")) == 1000
    finally:
        await plain.close()


@pytest.mark.parametrize("backend", ["sqlite"])  # the writer's turn exists on SQLite only
async def test_a_full_pool_of_waiting_writers_does_not_hang_the_writer_whose_turn_it_is(
    database_url: str, backend: str
) -> None:
    """Requests hold a pooled connection (their reads) while they wait for the writer's turn;
    write() used to take the turn first and then wait for a connection that none of them
    would give back (a node hung during its first report rollup under 100 requests/s)."""
    db = Database(create_engine(database_url, pool_size=2, max_overflow=0, pool_timeout=3))
    first_has_turn = asyncio.Event()

    async def first() -> None:
        async with db.begin() as conn, db.writing(conn):
            first_has_turn.set()
            await sqlfast.change(conn, INSERT, _row(1))
            await asyncio.sleep(0.2)

    async def whole_transaction() -> None:
        async with db.write() as conn:
            await sqlfast.change(conn, INSERT, _row(2))

    async def reads_then_writes(n: int) -> None:
        async with db.begin() as conn:
            await conn.scalar(sa.select(1))
            async with db.writing(conn):
                await sqlfast.change(conn, INSERT, _row(n))

    try:
        holder = asyncio.create_task(first())
        await first_has_turn.wait()
        tasks = [asyncio.create_task(whole_transaction())]
        await asyncio.sleep(0.01)
        tasks += [asyncio.create_task(reads_then_writes(n)) for n in (3, 4)]
        await asyncio.wait_for(asyncio.gather(holder, *tasks), 10)
        assert sorted(await _actors(db)) == ["t1", "t2", "t3", "t4"]
    finally:
        await db.close()


@pytest.fixture
async def direct_db(database_url: str) -> AsyncIterator[Database]:
    """The server's Database: the call path's statements on the event loop's own connection."""
    database = Database(create_engine(database_url, background_checkpoints=True), direct=True)
    yield database
    await database.close()


BY_ACTOR = sa.select(NOTE.c.id, NOTE.c.actor).where(NOTE.c.actor == sa.bindparam("who"))


@pytest.mark.parametrize("backend", ["sqlite"])  # the direct connection is SQLite's
async def test_direct_queries_and_commits_need_no_hand_off(
    direct_db: Database, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = direct_db
    assert db.direct() is not None
    async with db.connect() as conn:  # a pooled connection exists (opening one is hand-offs)
        await conn.scalar(sa.select(1))
    counter = HandOffs(monkeypatch)
    async with db.begin() as conn:
        assert await sqlfast.fetch(conn, BY_ACTOR, {"who": "t1"}) == []
        async with db.writing(conn):
            counts = await sqlfast.changes(
                conn, [(INSERT, _row(1)), (INSERT, [_row(2), _row(3)])], commit=True
            )
        assert counts == [1, 2]
        assert [r.actor for r in await sqlfast.fetch(conn, BY_ACTOR, {"who": "t2"})] == ["t2"]
    assert counter.count == 0, "no trip to aiosqlite's thread"
    assert await _actors(db) == ["t1", "t2", "t3"], "committed: the pool's connections see it"


@pytest.mark.parametrize("opening", ["begin", "lazy"])
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_direct_changes_keep_nothing_of_a_failed_or_missed_write(
    direct_db: Database, backend: str, opening: str
) -> None:
    db = direct_db
    taken = {**_row(1), "id": 10**6}
    async with getattr(db, opening)() as conn, db.writing(conn):
        await sqlfast.changes(conn, [(INSERT, taken)], commit=True)
    with pytest.raises(sqlite3.IntegrityError):  # what the call service turns into a Conflict
        async with getattr(db, opening)() as conn, db.writing(conn):
            await sqlfast.changes(conn, [(INSERT, _row(2)), (INSERT, taken)], commit=True)
    missing = sa.update(NOTE).where(NOTE.c.actor == sa.bindparam("b_actor")).values(result="x")
    async with getattr(db, opening)() as conn, db.writing(conn):
        counts = await sqlfast.changes(
            conn, [(missing, {"b_actor": "nobody"}), (INSERT, _row(3))],
            commit=True, first_changes=1,
        )  # fmt: skip
    assert counts == [0]
    direct = db.direct()
    assert direct is not None and not direct.in_transaction
    assert await _actors(db) == ["t1"], "t2 rolled back with the failed insert, t3 never ran"


@pytest.mark.parametrize("opening", ["begin", "lazy"])
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_direct_changes_wait_in_aiosqlites_thread_for_another_connections_lock(
    direct_db: Database,
    backend: str,
    opening: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process (``tongban purge``, say) or a write outside the turn holds SQLite's
    lock: the direct connection does not wait on the loop; the changes go the pooled way and
    wait there for the lock, and nothing is lost."""
    db = direct_db
    other = sqlite3.connect(database_url.split("///", 1)[1], isolation_level=None)
    counter = HandOffs(monkeypatch)
    try:
        other.execute("BEGIN IMMEDIATE")

        async def write() -> list[int]:
            async with getattr(db, opening)() as conn, db.writing(conn):
                return await sqlfast.changes(conn, [(INSERT, _row(1))], commit=True)

        task = asyncio.create_task(write())
        await asyncio.sleep(0.3)
        assert not task.done(), "waits for the other writer (not on the event loop)"
        other.execute("COMMIT")
        assert await asyncio.wait_for(task, 10) == [1]
    finally:
        other.close()
    assert counter.count >= 1, "went through aiosqlite's thread"
    assert await _actors(db) == ["t1"]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_query_inside_a_transaction_sees_its_own_writes(
    direct_db: Database, backend: str
) -> None:
    async with direct_db.begin() as conn:
        await sqlfast.change(conn, INSERT, _row(1))  # not committed yet
        assert [r.actor for r in await sqlfast.fetch(conn, BY_ACTOR, {"who": "t1"})] == ["t1"]
        await conn.rollback()
    assert await _actors(direct_db) == []


class Checkouts:
    """Counts the pooled connections taken."""

    def __init__(self, db: Database) -> None:
        self.count = 0

        def taken(*_args: Any) -> None:
            self.count += 1

        sa.event.listen(db.engine.sync_engine, "checkout", taken)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_lazy_transaction_of_direct_statements_takes_no_pooled_connection(
    direct_db: Database, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = direct_db
    async with db.connect() as conn:  # a pooled connection exists (opening one is hand-offs)
        await conn.scalar(sa.select(1))
    checkouts, counter = Checkouts(db), HandOffs(monkeypatch)
    async with db.lazy() as conn:
        assert await sqlfast.fetch(conn, BY_ACTOR, {"who": "t1"}) == []
        async with db.writing(conn):
            assert await sqlfast.changes(conn, [(INSERT, _row(1))], commit=True) == [1]
    assert checkouts.count == 0 and counter.count == 0
    assert await _actors(db) == ["t1"]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_lazy_transaction_takes_the_pooled_connection_when_a_statement_needs_it(
    direct_db: Database, backend: str
) -> None:
    """Anything but sqlfast's direct statements begins the pooled transaction; from then on
    it is that connection's: committed at the end, rolled back on an error."""
    db = direct_db
    checkouts = Checkouts(db)
    async with db.lazy() as conn:
        await conn.execute(INSERT, _row(1))
        assert checkouts.count == 1
        # a query now runs in the transaction and sees its uncommitted write
        assert [r.actor for r in await sqlfast.fetch(conn, BY_ACTOR, {"who": "t1"})] == ["t1"]
    with pytest.raises(RuntimeError):
        async with db.lazy() as conn:
            await sqlfast.changes(conn, [(INSERT, _row(2))])  # joins, does not commit
            await conn.execute(INSERT, _row(3))
            raise RuntimeError("the caller fails")
    with pytest.raises(RuntimeError):
        async with db.lazy() as conn, db.writing(conn):
            await sqlfast.changes(conn, [(INSERT, _row(4))])
            raise RuntimeError("before the writer's commit")
    assert await _actors(db) == ["t1"], "t2, t3, t4 rolled back"


async def test_lazy_is_begin_without_a_direct_connection(db: Database, backend: str) -> None:
    async with db.lazy() as conn:
        assert isinstance(conn, AsyncConnection)
        await sqlfast.changes(conn, [(INSERT, _row(1))])
    assert await _actors(db) == ["t1"]
