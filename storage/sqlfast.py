"""The call path's statements in one thread hand-off each on SQLite.

SQLAlchemy's aiosqlite adapter sends every step of a statement to aiosqlite's thread and back:
open a cursor, execute, fetch, close: four hand-offs for a SELECT, three for an INSERT. Each
costs 0.25-0.3 ms on an idle node and, under load, blocks the event loop on the queue's lock
and the GIL while the thread runs (py-spy at 50 requests/s: 28 % of the loop's samples in
aiosqlite's ``put_nowait``). A call request was 18 hand-offs, a cancel 15.

Here a statement is compiled by SQLAlchemy once (its SQL, parameter order and type
processors are kept) and run on the transaction's own aiosqlite connection with one call:
``execute_fetchall`` for a query, ``execute``/``executemany`` for a change. Same connection,
same transaction, same SQL as SQLAlchemy would send; the commit still goes through
SQLAlchemy. On any other driver (asyncpg) the statement goes through SQLAlchemy unchanged.

``changes`` runs several changes of one transaction in a single hand-off: the call request's
four INSERTs (call, members, event, deadlines) cost one thread round trip instead of four.
It calls aiosqlite's own queue (``Connection._execute``, the method its public ``execute``
uses; aiosqlite is pinned in pyproject.toml, and ``tests/integration/storage/test_writes.py``
fails if that changes) and falls back to one hand-off per change if it is missing.

The server's SQLite gives a third way (``Database.direct``, storage/database.py): a query
made outside a transaction, and changes that commit by themselves, run on a connection of the
event loop's own thread, with no hand-off at all (0.1-0.5 ms of the loop's time; each
hand-off waited for the GIL). If that connection meets another's write lock, the statements
go to aiosqlite's thread as above and wait there. In a ``Database.lazy()`` transaction whose
pooled connection has not been taken yet, that is where they go first; the pooled
connection is taken only for a statement that must join a transaction.

Only for statements built once (module constants): the cache is keyed by the statement
object. No expanding IN parameters, no Python-side column defaults (the call tables have none).
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

from storage.database import LazyConnection, direct_for

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bound parameter names, in the order of the SQL's placeholders
    constants: dict[str, Any]
    binds: tuple[Processor, ...]
    row: type[Any] | None  # for a query: a named tuple of its columns
    results: tuple[Processor, ...]


_cache: dict[tuple[int, tuple[str, ...]], tuple[sa.Executable, _Compiled]] = {}


def _driver(conn: AsyncConnection) -> Any:
    """The aiosqlite connection under this SQLAlchemy connection, or None."""
    if conn.dialect.name != "sqlite" or conn.dialect.driver != "aiosqlite":
        return None
    return conn.sync_connection.connection.driver_connection if conn.sync_connection else None


def _direct(conn: AsyncConnection, driver: Any) -> sqlite3.Connection | None:
    """The loop thread's own connection, when this one holds no transaction (a statement
    inside one must see its uncommitted writes, so it stays on it)."""
    if driver is None or driver.in_transaction:
        return None
    return direct_for(conn)


def _locked(err: sqlite3.OperationalError) -> bool:
    """SQLite's "database is locked" (or "busy"): another connection holds the lock."""
    return "locked" in str(err) or "busy" in str(err)


def _compile(stmt: sa.Executable, dialect: sa.Dialect, keys: tuple[str, ...]) -> _Compiled:
    key = (id(stmt), keys)
    hit = _cache.get(key)
    if hit is not None and hit[0] is stmt:
        return hit[1]
    assert isinstance(stmt, sa.ClauseElement)
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    if not isinstance(compiled, SQLCompiler) or compiled.positiontup is None:
        raise TypeError("sqlfast needs a positional paramstyle")
    names = tuple(compiled.positiontup)
    bound = compiled.binds
    if any(bound[name].expanding for name in names):
        raise TypeError("sqlfast cannot expand IN parameters")
    binds = tuple(bound[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
    # parameters the statement carries itself (a LIMIT, a constant compared with)
    constants = {name: bound[name].effective_value for name in names if name not in keys}
    row_type: type[Any] | None = None
    results: tuple[Processor, ...] = ()
    if isinstance(stmt, sa.Select):
        columns = list(stmt.selected_columns)
        row_type = _row_type([c.key for c in columns])
        results = tuple(
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        )
    done = _Compiled(compiled.string, names, constants, binds, row_type, results)
    _cache[key] = (stmt, done)
    return done


def _row_type(fields: list[str]) -> type[Any]:
    """A named tuple class: rows read like SQLAlchemy's (``row.window_id``)."""
    made: type[Any] = namedtuple("Row", fields)  # type: ignore[misc]
    return made


def _args(compiled: _Compiled, params: Mapping[str, Any]) -> list[Any]:
    out = []
    constants = compiled.constants
    for name, process in zip(compiled.names, compiled.binds, strict=True):
        value = constants[name] if name in constants else params[name]
        out.append(process(value) if process is not None else value)
    return out


async def fetch(
    conn: AsyncConnection, stmt: sa.Select[Any], params: Mapping[str, Any]
) -> list[Any]:
    """The rows of a query, with attribute access by column name."""
    rows: Any = None
    if isinstance(conn, LazyConnection) and not conn.started:
        # no transaction yet, so nothing uncommitted to see: the loop's own connection
        compiled = _compile(stmt, conn.dialect, tuple(sorted(params)))
        args = _args(compiled, params)
        rows = _direct_rows(conn.direct(), compiled.sql, args)
    if rows is None:
        conn = await _opened(conn)
        driver = _driver(conn)
        if driver is None:
            return list(await conn.execute(stmt, dict(params)))
        compiled = _compile(stmt, conn.dialect, tuple(sorted(params)))
        args = _args(compiled, params)
        rows = _direct_rows(_direct(conn, driver), compiled.sql, args)
        if rows is None:
            rows = await driver.execute_fetchall(compiled.sql, args)
    assert compiled.row is not None
    make, results = compiled.row, compiled.results
    return [
        make(*(p(v) if p is not None else v for p, v in zip(results, raw, strict=True)))
        for raw in rows
    ]


async def change(
    conn: AsyncConnection,
    stmt: sa.Executable,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
) -> int:
    """Run an INSERT, UPDATE or DELETE (one parameter set, or many with the same keys);
    returns the number of rows it changed."""
    many = not isinstance(params, Mapping)
    sets: list[Mapping[str, Any]] = [params] if isinstance(params, Mapping) else list(params)
    conn = await _opened(conn)
    driver = _driver(conn)
    if driver is None:
        result = await conn.execute(stmt, [dict(p) for p in sets] if many else dict(sets[0]))
        return int(result.rowcount)
    compiled = _compile(stmt, conn.dialect, tuple(sorted(sets[0])))
    if many:
        cursor = await driver.executemany(compiled.sql, [_args(compiled, p) for p in sets])
    else:
        cursor = await driver.execute(compiled.sql, _args(compiled, sets[0]))
    return int(cursor.rowcount)


Change = tuple[sa.Executable, Mapping[str, Any] | Sequence[Mapping[str, Any]]]


async def changes(
    conn: AsyncConnection,
    steps: Sequence[Change],
    *,
    commit: bool = False,
    first_changes: int | None = None,
) -> list[int]:
    """Run several changes in order, in the connection's transaction, as ``change`` would;
    on SQLite in one hand-off to aiosqlite's thread. Returns the rows each changed (for a
    list of parameter sets, what the driver counts: asyncpg gives -1).

    ``commit``: on SQLite the transaction is also committed in that hand-off (SQLAlchemy's
    own commit then finds nothing to do, storage/db.py); elsewhere it commits when its
    ``begin()`` ends, as before. ``first_changes``: stop after the first change unless it
    changed exactly that many rows (a compare-and-set), so nothing after it is written or
    committed; the caller sees the count and raises."""
    if isinstance(conn, LazyConnection) and not conn.started and commit:
        # no transaction to join: committed by themselves on the loop's own connection
        done = _direct_changes(conn.direct(), _prepare(conn, steps), first_changes)
        if done is not None:
            return done
    conn = await _opened(conn)
    driver = _driver(conn)
    queue = getattr(driver, "_execute", None)
    if driver is None or queue is None:
        counts = []
        for stmt, params in steps:
            counts.append(await change(conn, stmt, params))
            if first_changes is not None and counts[0] != first_changes:
                break
        return counts
    prepared = _prepare(conn, steps)
    if commit:
        done = _direct_changes(_direct(conn, driver), prepared, first_changes)
        if done is not None:
            return done

    def run() -> list[int]:
        raw = driver._conn  # aiosqlite's sqlite3 connection, used here on aiosqlite's thread
        counts, complete = _apply(raw, prepared, first_changes)
        if complete and commit:
            raw.commit()
        # else not committed: the caller raises, its transaction rolls back
        return counts

    ran: list[int] = await queue(run)
    return ran


def _prepare(conn: AsyncConnection, steps: Sequence[Change]) -> list[tuple[str, Any, bool]]:
    """Each change's SQL and arguments, and whether it has several parameter sets."""
    prepared: list[tuple[str, Any, bool]] = []
    for stmt, params in steps:
        sets: list[Mapping[str, Any]] = [params] if isinstance(params, Mapping) else list(params)
        compiled = _compile(stmt, conn.dialect, tuple(sorted(sets[0])))
        if isinstance(params, Mapping):
            prepared.append((compiled.sql, _args(compiled, params), False))
        else:
            prepared.append((compiled.sql, [_args(compiled, p) for p in sets], True))
    return prepared


def _direct_rows(direct: sqlite3.Connection | None, sql: str, args: list[Any]) -> Any:
    """A query's raw rows from the loop's own connection; None if there is none, or if
    another connection holds SQLite's lock (the caller goes the pooled way)."""
    if direct is None:
        return None
    try:
        return direct.execute(sql, args).fetchall()
    except sqlite3.OperationalError as err:
        if not _locked(err):
            raise
        return None


def _direct_changes(
    direct: sqlite3.Connection | None,
    prepared: list[tuple[str, Any, bool]],
    first_changes: int | None,
) -> list[int] | None:
    """Changes committed together on the loop's own connection; None if there is none, or
    if another connection holds SQLite's lock (the caller goes the pooled way)."""
    if direct is None:
        return None
    try:
        direct.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as err:
        if not _locked(err):
            raise
        return None
    try:
        counts, complete = _apply(direct, prepared, first_changes)
        # a compare-and-set that missed: nothing is kept (the caller raises)
        direct.execute("COMMIT" if complete else "ROLLBACK")
    except BaseException:
        if direct.in_transaction:
            direct.execute("ROLLBACK")
        raise
    return counts


async def _opened(conn: AsyncConnection) -> AsyncConnection:
    """The connection to run on: a lazy transaction's pooled one, taken now if need be."""
    if isinstance(conn, LazyConnection):
        opened: AsyncConnection = await conn.connection()
        return opened
    return conn


def _apply(
    raw: sqlite3.Connection, prepared: list[tuple[str, Any, bool]], first_changes: int | None
) -> tuple[list[int], bool]:
    """Run prepared changes on a sqlite3 connection; the rows each changed, and whether all
    ran (not when the first changed other than ``first_changes`` rows)."""
    counts = []
    for sql, args, many in prepared:
        cursor = raw.executemany(sql, args) if many else raw.execute(sql, args)
        counts.append(int(cursor.rowcount))
        cursor.close()
        if first_changes is not None and counts[0] != first_changes:
            return counts, False
    return counts, True
