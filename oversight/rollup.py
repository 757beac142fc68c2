"""The monthly report's daily rollup (issue 7): finished Asia/Shanghai days aggregated once.

Two parts, each with its own validity per day in ``report_days``:

- ``calls``: ``report_daily`` and ``report_daily_declines``, the output of
  ``oversight.aggregates.aggregate`` grouped per day.
- ``offline``: ``report_offline``, office-hours time without online or busy presence per day
  and staff member, keyed by a fingerprint of the month's opening intervals.

Database triggers (migration 0002) add 1 to a day's ``version`` in the transaction that
changes one of its calls, call members or presence intervals, however late (a rating, a
decline, an ``unnecessary`` mark, a presence interval closed or corrected). A rebuild first
locks the day's ``report_days`` row, then reads the source rows, then records the version it
built: a change committed before the lock is read; one after it bumps the version past the
built one, so the day is rebuilt at the next report. Misses (their verdicts change for weeks)
and absences are not rolled up: the report reads them live.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.office_hours import open_intervals
from directory.snapshot import DirectorySnapshot
from oversight.aggregates import Parts, aggregate, as_date
from oversight.days import by_day, day_start, hours_key, runs
from oversight.figures import Figures, gc_paused
from oversight.offline import ONLINE_STATUSES, Interval, offline_intervals
from oversight.rules import month_bounds
from storage import schema as s
from storage.database import Database

CALLS = "calls"
OFFLINE = "offline"
_BATCH = 5_000  # rows per INSERT statement


# --- validity -----------------------------------------------------------------------------


async def stale_days(conn: AsyncConnection, part: str, days: Sequence[date]) -> list[date]:
    """The days among ``days`` not rolled up, or changed since."""
    if not days:
        return []
    d = s.report_days.c
    current = {
        as_date(r.day)
        for r in await conn.execute(
            sa.select(d.day).where(
                d.part == part,
                d.day >= min(days),
                d.day <= max(days),
                d.built_version == d.version,
            )
        )
    }
    return [day for day in days if day not in current]


async def _lock(conn: AsyncConnection, part: str, days: Sequence[date]) -> list[date]:
    """Create and lock the days' validity rows; the days still to build once locked (another
    report may have built some while this one waited)."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    await conn.execute(
        insert(s.report_days)
        .values([{"day": day, "part": part, "version": 0} for day in days])
        .on_conflict_do_nothing()
    )
    d = s.report_days.c
    rows = await conn.execute(
        sa.select(d.day, d.version, d.built_version)
        .where(d.part == part, d.day >= min(days), d.day <= max(days))
        .with_for_update()
    )
    wanted = set(days)
    return sorted(
        as_date(r.day) for r in rows if as_date(r.day) in wanted and r.built_version != r.version
    )


async def _built(conn: AsyncConnection, part: str, days: Sequence[date], now: datetime) -> None:
    d = s.report_days.c
    await conn.execute(
        sa.update(s.report_days)
        .where(d.part == part, d.day.in_(list(days)))
        .values(built_version=d.version, built_at=now)
    )


async def _insert(conn: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), _BATCH):
        await conn.execute(sa.insert(table), rows[i : i + _BATCH])


async def _analyze(conn: AsyncConnection, rows: list[Any], *tables: sa.Table) -> None:
    """Fresh planner statistics after a large rebuild (PostgreSQL): a month's first rollup
    otherwise leaves the planner expecting a few hundred rows, and it sorts on disk."""
    if conn.dialect.name == "postgresql" and len(rows) >= 10_000:
        for table in tables:
            await conn.execute(sa.text(f"ANALYZE {table.name}"))


# --- calls --------------------------------------------------------------------------------


async def rebuild_calls(db: Database, days: Sequence[date], now: datetime) -> None:
    """Roll up the calls of ``days`` (one transaction per run of consecutive days)."""
    for first, after in runs(days):
        async with db.begin() as conn:
            todo = await _lock(conn, CALLS, [d for d in days if first <= d < after])
            if not todo:
                continue
            daily, declines = s.report_daily.c, s.report_daily_declines.c
            await conn.execute(sa.delete(s.report_daily).where(daily.day.in_(todo)))
            await conn.execute(sa.delete(s.report_daily_declines).where(declines.day.in_(todo)))
            rows: list[dict[str, Any]] = []
            decline_rows: list[dict[str, Any]] = []
            for a, b in runs(todo):
                parts = await aggregate(
                    conn, start=day_start(a), end=day_start(b), hall_ids=None, by_day=True
                )
                daily_rows, reasons = _daily_rows(parts)
                rows.extend(daily_rows)
                decline_rows.extend(reasons)
            await _insert(conn, s.report_daily, rows)
            await _insert(conn, s.report_daily_declines, decline_rows)
            await _built(conn, CALLS, todo, now)
            await _analyze(conn, rows, s.report_daily, s.report_daily_declines)


def _waits_text(waits: Counter[int]) -> str | None:
    return ",".join(str(w) for w in sorted(waits.elements())) or None


def _daily_rows(parts: Parts) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    declines: list[dict[str, Any]] = []

    def row(day: date | None, window_id: int, account_id: int | None, f: Figures,
            waits: Counter[int]) -> dict[str, Any]:  # fmt: skip
        return {
            "day": day, "window_id": window_id, "account_id": account_id,
            "requests": f.requests, "answered": f.answered, "answered_late": f.answered_late,
            "unnecessary": f.unnecessary, "rating_sum": int(f.rating_sum), "ratings": f.ratings,
            "waits": _waits_text(waits),
        }  # fmt: skip

    for (day, window_id), figs in parts.windows.items():
        unattributed = parts.unattributed.get((day, window_id), Counter())
        rows.append(row(day, window_id, None, figs, unattributed))
    for (day, window_id, account_id), figs in parts.staff.items():
        rows.append(row(day, window_id, account_id, figs, figs.waits))
        declines.extend(
            {"day": day, "window_id": window_id, "account_id": account_id, "reason": reason,
             "declines": n}
            for reason, n in figs.decline_reasons.items()
        )  # fmt: skip
    return rows, declines


async def read_calls(
    conn: AsyncConnection, hall_ids: Sequence[int] | None, first: date, after: date
) -> Parts:
    """The rolled-up days [first, after) summed per window and staff member, day None;
    ``hall_ids`` None: every window."""
    d, w, x = s.report_daily.c, s.windows.c, s.report_daily_declines.c
    daily: Any = s.report_daily
    declines: Any = s.report_daily_declines
    where: list[Any] = [d.day >= first, d.day < after]
    where_declines: list[Any] = [x.day >= first, x.day < after]
    if hall_ids is not None:
        daily = daily.join(s.windows, w.id == d.window_id)
        declines = declines.join(s.windows, w.id == x.window_id)
        where.append(w.hall_id.in_(hall_ids))
        where_declines.append(w.hall_id.in_(hall_ids))
    if conn.dialect.name == "postgresql":
        # hash the ~300,000 rows of a province month in memory rather than sort them on disk
        await conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    parts = Parts()
    window_waits: defaultdict[int, list[list[int]]] = defaultdict(list)
    rows = (
        await conn.execute(
            sa.select(
                d.window_id,
                d.account_id,
                sa.func.sum(d.requests).label("requests"),
                sa.func.sum(d.answered).label("answered"),
                sa.func.sum(d.answered_late).label("late"),
                sa.func.sum(d.unnecessary).label("unnecessary"),
                sa.func.sum(d.rating_sum).label("rating_sum"),
                sa.func.sum(d.ratings).label("ratings"),
                sa.func.aggregate_strings(d.waits, ",").label("waits"),
            )
            .select_from(daily)
            .where(*where)
            .group_by(d.window_id, d.account_id)
        )
    ).all()
    with gc_paused():
        for r in rows:
            figs = Figures(
                requests=int(r.requests),
                answered=int(r.answered),
                answered_late=int(r.late),
                unnecessary=int(r.unnecessary),
                rating_sum=float(r.rating_sum),
                ratings=int(r.ratings),
            )
            if r.waits:
                waits = list(map(int, r.waits.split(",")))
                figs.waits.update(waits)
                window_waits[r.window_id].append(waits)
            if r.account_id is None:
                parts.windows[(None, r.window_id)] = figs
            else:
                parts.staff[(None, r.window_id, r.account_id)] = figs
        # a window's waits are its own row's (calls answered by no one recorded) and its staff's
        for window_id, lists in window_waits.items():
            window = parts.windows[(None, window_id)]
            window.waits.clear()
            window.waits.update(chain.from_iterable(lists))  # counted in C, not key by key

    by_reason = (
        sa.select(x.window_id, x.account_id, x.reason, sa.func.sum(x.declines).label("n"))
        .select_from(declines)
        .where(*where_declines)
        .group_by(x.window_id, x.account_id, x.reason)
        .subquery()
    )
    as_json = (
        sa.func.json_group_object if conn.dialect.name == "sqlite" else sa.func.json_object_agg
    )
    for r in await conn.execute(
        sa.select(by_reason.c.window_id, by_reason.c.account_id,
                  as_json(by_reason.c.reason, by_reason.c.n).label("reasons"))
        .group_by(by_reason.c.window_id, by_reason.c.account_id)
    ):  # fmt: skip
        reasons = r.reasons if isinstance(r.reasons, dict) else json.loads(r.reasons)
        parts.staff[(None, r.window_id, r.account_id)].decline_reasons.update(
            {reason: int(n) for reason, n in reasons.items()}
        )
    return parts


# --- offline ------------------------------------------------------------------------------


def month_opening(
    snap: DirectorySnapshot, month: str
) -> dict[tuple[Any, ...], tuple[str, list[Interval]]]:
    """Per set of office hours of the home windows: the fingerprint and the opening intervals
    (UTC) of the whole month."""
    start, end = month_bounds(month)
    out: dict[tuple[Any, ...], tuple[str, list[Interval]]] = {}
    for window in snap.windows.values():
        periods = snap.window_periods(window.id)
        if periods not in out:
            opening = [
                (a.astimezone(UTC), b.astimezone(UTC))
                for a, b in open_intervals(periods, snap.calendar, start, end)
            ]
            out[periods] = (hours_key(opening), opening)
    return out


async def rebuild_offline(
    db: Database, snap: DirectorySnapshot, month: str, days: Sequence[date], now: datetime
) -> None:
    """Roll up the office-hours time offline on ``days`` of ``month`` for the staff of every
    home window, absences not deducted."""
    opening = month_opening(snap, month)
    staff: set[tuple[int, tuple[Any, ...]]] = set()
    for window in snap.windows.values():
        if window.home_side:
            periods = snap.window_periods(window.id)
            staff.update((account.id, periods) for account in snap.staff.get(window.id, ()))
    for first, after in runs(days):
        async with db.begin() as conn:
            todo = await _lock(conn, OFFLINE, [d for d in days if first <= d < after])
            if not todo:
                continue
            await conn.execute(sa.delete(s.report_offline).where(s.report_offline.c.day.in_(todo)))
            rows: list[dict[str, Any]] = []
            for a, b in runs(todo):
                lo, hi = day_start(a), day_start(b)
                online = await presence(conn, lo, hi)
                wanted = [day for day in todo if a <= day < b]
                for account_id, periods in sorted(staff):
                    key, month_open = opening[periods]
                    clipped = [(max(x, lo), min(y, hi)) for x, y in month_open if x < hi and y > lo]
                    seconds = by_day(offline_intervals(clipped, online.get(account_id, ())))
                    rows.extend(
                        {"day": day, "account_id": account_id, "hours_key": key,
                         "offline_us": seconds.get(day, 0)}
                        for day in wanted
                    )  # fmt: skip
            await _insert(conn, s.report_offline, rows)
            await _built(conn, OFFLINE, todo, now)
            await _analyze(conn, rows, s.report_offline)


async def presence(
    conn: AsyncConnection, start: datetime, end: datetime, accounts: Iterable[int] | None = None
) -> dict[int, list[Interval]]:
    """Online or busy intervals overlapping [start, end), clipped to it, per account."""
    p = s.presence_intervals.c
    where = [
        p.status.in_(ONLINE_STATUSES),
        p.started_at < end,
        sa.or_(p.ended_at.is_(None), p.ended_at > start),
    ]
    if accounts is not None:
        where.append(p.account_id.in_(sorted(set(accounts))))
    online: dict[int, list[Interval]] = defaultdict(list)
    for r in await conn.execute(sa.select(p.account_id, p.started_at, p.ended_at).where(*where)):
        online[r.account_id].append((max(r.started_at, start), min(r.ended_at or end, end)))
    return online


async def read_offline(
    conn: AsyncConnection, first: date, after: date
) -> dict[tuple[int, str], tuple[int, int]]:
    """(account, hours key) -> (microseconds offline, days rolled up) over [first, after)."""
    o = s.report_offline.c
    return {
        (r.account_id, r.hours_key): (int(r.us), int(r.days))
        for r in await conn.execute(
            sa.select(
                o.account_id,
                o.hours_key,
                sa.func.sum(o.offline_us).label("us"),
                sa.func.count().label("days"),
            )
            .where(o.day >= first, o.day < after)
            .group_by(o.account_id, o.hours_key)
        )
    }
