"""The report's hourly rollup of the current Asia/Shanghai day (issue 7, migration 0003).

The daily rollup (``oversight.rollup``) covers finished days; a report of a running month
would otherwise aggregate the whole current day from the raw rows, joining a day's calls to
their members (bench/report: 44,000 calls, over a second). Here the current day's finished
hours are aggregated once each with the same statements (``oversight.aggregates``) into
``report_hourly`` / ``report_hourly_declines``, and only the hour in progress, with anything
requested after it, is read live.

Validity works as for days: the triggers that bump ``report_days`` bump ``report_hours``
too (0003), in the transaction of any change to one of the hour's calls or call members,
however late (an answer just after the hour, a rating, a decline). A rebuild makes sure the
hour's row exists, reads its version, aggregates without a lock and records the version it
read as built; a later change bumps the version past it and the hour is rebuilt, or read
live, at the next report. Hours are whole hours since the Unix epoch: China keeps UTC+8, so
each is also a local hour, and a local day is 24 of them. Rows of hours older than the day
before are deleted as new ones are built.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from oversight import rollup
from oversight.aggregates import Parts, aggregate
from storage import schema as s
from storage.database import Database

HOUR = timedelta(hours=1)
_KEEP = 48  # hours kept behind the first one asked for (yesterday's, for a report at 00:30)


def hour_of(at: datetime) -> int:
    """The hour ``at`` falls in (an aware datetime)."""
    return int((at - datetime(1970, 1, 1, tzinfo=UTC)) // HOUR)


def hour_start(hour: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + hour * HOUR


def runs(hours: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive hours as [first, after last) ranges."""
    out: list[tuple[int, int]] = []
    for hour in sorted(set(hours)):
        if out and out[-1][1] == hour:
            out[-1] = (out[-1][0], hour + 1)
        else:
            out.append((hour, hour + 1))
    return out


async def stale_hours(conn: AsyncConnection, hours: Sequence[int]) -> list[int]:
    """The hours among ``hours`` not rolled up, or changed since."""
    if not hours:
        return []
    h = s.report_hours.c
    current = {
        r.hour
        for r in await conn.execute(
            sa.select(h.hour).where(
                h.hour >= min(hours), h.hour <= max(hours), h.built_version == h.version
            )
        )
    }
    return [hour for hour in hours if hour not in current]


async def rebuild(db: Database, hours: Sequence[int], now: datetime) -> None:
    """Roll up ``hours`` per run of consecutive hours, as ``oversight.rollup`` rebuilds days:
    the validity rows made sure of, their versions read, the hours aggregated without a lock,
    then the hours still to build written in one short transaction with the versions read."""
    for first, after in runs(hours):
        span = [h for h in hours if first <= h < after]
        async with db.write() as conn:
            insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
            await conn.execute(
                insert(s.report_hours)
                .values([{"hour": hour, "version": 0} for hour in span])
                .on_conflict_do_nothing()
            )
        async with db.connect() as conn:
            read = await _versions(conn, span)
            rows: list[dict[str, Any]] = []
            decline_rows: list[dict[str, Any]] = []
            for hour in sorted(read):
                parts = await aggregate(
                    conn,
                    start=hour_start(hour),
                    end=hour_start(hour + 1),
                    hall_ids=None,
                    by_day=False,
                    few=True,
                )
                hour_rows, reasons = rollup.hourly_rows(parts, hour)
                rows.extend(hour_rows)
                decline_rows.extend(reasons)
        if not read:
            continue
        async with db.write() as conn:
            todo = sorted(await _versions(conn, sorted(read), lock=True))
            if not todo:
                continue
            keep = set(todo)
            hourly, declines = s.report_hourly.c, s.report_hourly_declines.c
            old = first - _KEEP
            await conn.execute(
                sa.delete(s.report_hourly).where(sa.or_(hourly.hour.in_(todo), hourly.hour < old))
            )
            await conn.execute(
                sa.delete(s.report_hourly_declines).where(
                    sa.or_(declines.hour.in_(todo), declines.hour < old)
                )
            )
            await conn.execute(sa.delete(s.report_hours).where(s.report_hours.c.hour < old))
            await rollup.insert_rows(conn, s.report_hourly, [r for r in rows if r["hour"] in keep])
            await rollup.insert_rows(
                conn, s.report_hourly_declines, [r for r in decline_rows if r["hour"] in keep]
            )
            h = s.report_hours.c
            await conn.execute(
                sa.update(s.report_hours)
                .where(h.hour == sa.bindparam("b_hour"))
                .values(built_version=sa.bindparam("b_version"), built_at=now),
                [{"b_hour": hour, "b_version": read[hour]} for hour in todo],
            )


async def _versions(
    conn: AsyncConnection, hours: Sequence[int], *, lock: bool = False
) -> dict[int, int]:
    """The hours among ``hours`` still to build, with their version now; ``lock``: the rows
    locked (PostgreSQL) until the transaction ends."""
    h = s.report_hours.c
    query = sa.select(h.hour, h.version, h.built_version).where(
        h.hour >= min(hours), h.hour <= max(hours)
    )
    rows = await conn.execute(query.with_for_update() if lock else query)
    wanted = set(hours)
    return {
        int(r.hour): int(r.version)
        for r in rows
        if r.hour in wanted and r.built_version != r.version
    }


async def refresh(db: Database, month: str, hours: Sequence[int], now: datetime) -> None:
    """Roll up the hours among ``hours`` never rolled up, or changed since, and sum them."""
    if not hours:
        return
    async with db.connect() as conn:
        stale = await stale_hours(conn, hours)
    if stale:
        await rebuild(db, stale, now)
    async with db.connect() as conn:
        done = await summed(conn, month, hours)
    if not done:
        await compact(db, month, hours, now)


async def read(
    conn: AsyncConnection, hall_ids: Sequence[int] | None, hours: Sequence[int]
) -> tuple[Parts, set[int]]:
    """The figures of those of ``hours`` rolled up and still current, and which hours they
    are (the others are to be read live: one changed since this report rolled it up)."""
    current = set(hours) - set(await stale_hours(conn, hours))
    if not current:
        return Parts(), current
    return await rollup.read_hours(conn, hall_ids, sorted(current)), current


# --- the day's hours summed once ------------------------------------------------------------


def _hours_text(hours: Sequence[int]) -> str:
    return ",".join(map(str, sorted(hours)))


async def _built_sum(conn: AsyncConnection, hours: Sequence[int]) -> int | None:
    """The sum of the built versions of ``hours``, None unless every one is current."""
    h = s.report_hours.c
    row = (
        await conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(h.built_version), 0), sa.func.count()).where(
                h.hour.in_(list(hours)), h.built_version == h.version
            )
        )
    ).one()
    return int(row[0]) if int(row[1]) == len(set(hours)) else None


async def summed(conn: AsyncConnection, month: str, hours: Sequence[int]) -> bool:
    """Whether ``report_today`` holds exactly ``hours`` of ``month`` as built now."""
    p = s.report_today_spans.c
    span = (await conn.execute(sa.select(p.hours, p.built).where(p.month == month))).one_or_none()
    if span is None or span.hours != _hours_text(hours):
        return False
    built = await _built_sum(conn, hours)
    return built is not None and built == span.built


async def compact(db: Database, month: str, hours: Sequence[int], now: datetime) -> None:
    """Sum ``hours`` (all current) into ``report_today`` for ``month``; given up when one
    changed meanwhile (the report then sums them itself) or another report does the same."""
    async with db.connect() as conn:
        if conn.dialect.name == "postgresql":  # the hours' versions and rows from one snapshot
            await conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            async with conn.begin(), db.writing(conn):  # SQLite: in the writers' queue
                await _compact(conn, month, hours, now)
        except sa.exc.DBAPIError as err:
            code = getattr(err.orig, "sqlstate", None) or getattr(err.orig, "pgcode", None)
            if code not in ("40001", "40P01", "23505"):  # serialization, deadlock, duplicate
                raise


async def _compact(conn: AsyncConnection, month: str, hours: Sequence[int], now: datetime) -> None:
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    p = s.report_today_spans.c
    # the first statement writes: SQLite takes its write lock before reading anything
    await conn.execute(insert(s.report_today_spans).values(month=month).on_conflict_do_nothing())
    await conn.execute(sa.select(p.month).where(p.month == month).with_for_update())
    if await summed(conn, month, hours):
        return
    built = await _built_sum(conn, hours)
    if built is None:
        return
    await conn.execute(sa.delete(s.report_today).where(s.report_today.c.month == month))
    parts = await rollup.read_hours(conn, None, hours)
    await rollup.insert_rows(conn, s.report_today, rollup.monthly_rows(month, parts))
    await conn.execute(
        sa.update(s.report_today_spans)
        .where(p.month == month)
        .values(hours=_hours_text(hours), built=built, built_at=now)
    )
