"""The monthly report (R2, R10, R12, R13): per agency, hall, window and staff member.

Finished Asia/Shanghai days come from the daily rollup (``oversight.rollup``), built on first
use and rebuilt when their source rows change, and the current day's hours but the one in
progress from the hourly rollup (``oversight.hours``), kept current the same way; the rest
of the month (that hour, hours changed since, days ahead) is aggregated live with the same
statements (``oversight.aggregates``). Python adds the grouped figures up
from staff to windows, halls, agencies and the total and reads nearest-rank percentiles off
the summed histograms of time to answer. Misses and absences are always read live; offline
minutes come from presence intervals clipped to office hours.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.snapshot import DirectorySnapshot
from oversight import hours, rollup
from oversight.aggregates import Parts, aggregate
from oversight.days import ONE_DAY, day_start, finished_days, local_day, microseconds
from oversight.figures import Figures, gc_paused
from oversight.hours import hour_of, hour_start
from oversight.offline import Interval, offline_intervals
from oversight.rules import STATUSES, month_bounds, month_of
from storage import schema as s
from storage.database import Database
from tongban.masking import mask_phone

__all__ = ["LEVELS", "Figures", "monthly_report", "refresh_rollup"]

LEVELS = ("total", "agency", "hall", "window", "staff")

StaffKey = tuple[int, int]  # (window id, account id)


async def monthly_report(
    db: Database,
    snap: DirectorySnapshot,
    *,
    agency_id: int,
    month: str,
    now: datetime,
    rollup_days: bool = True,
) -> dict[str, Any]:
    """The report over ``agency_id`` and everything below it for one Asia/Shanghai month.

    ``rollup_days=False`` aggregates every raw row of the month instead (the reference the
    tests compare the rollup with)."""
    start, end = month_bounds(month)
    scope = snap.subtree(agency_id)
    hall_ids = sorted(h.id for h in snap.halls.values() if h.agency_id in scope)
    # every hall: no filter (a window the snapshot does not know is left out of the rows)
    halls = None if len(hall_ids) == len(snap.halls) else hall_ids
    window_figs: dict[int, Figures] = defaultdict(Figures)
    staff_figs: dict[StaffKey, Figures] = defaultdict(Figures)
    done = finished_days(month, now) if rollup_days else []
    live_from = day_start(done[-1] + ONE_DAY) if done else start
    # the month running: the current day's hours but the one in progress are rolled up too
    today = _today_hours(live_from, end, now) if rollup_days else []
    if done:
        await _refresh(db, snap, month, done, now)
    if today:
        await _refresh_hours(db, month, today, now)
    async with db.connect() as conn:
        rolled: set[int] = set()
        if done:
            parts, with_today = await _rolled(conn, halls, month, done[0], done[-1] + ONE_DAY,
                                              today)  # fmt: skip
            _merge(parts, window_figs, staff_figs)
            rolled = set(today) if with_today else rolled
        if today and not rolled:
            parts, rolled = await _rolled_hours(conn, halls, today)
            _merge(parts, window_figs, staff_figs)
        for a, b, few in _live_spans(live_from, end, bool(today), rolled):
            _merge(await _live(conn, halls, a, b, few), window_figs, staff_figs)
        await _misses(conn, halls, month, staff_figs)
        staff_keys = _staff_keys(snap, hall_ids, staff_figs)
        people = await _people(conn, {account_id for _w, account_id in staff_keys})
        await _offline(conn, snap, month, staff_keys, staff_figs, min(end, now), done)
    with gc_paused():
        # windows get declines, misses and offline time from their staff rows; the rest per call
        for (window_id, _account), figs in staff_figs.items():
            window = window_figs[window_id]
            if figs.decline_reasons:
                window.decline_reasons.update(figs.decline_reasons)
            if figs.misses:
                window.misses.update(figs.misses)
            window.offline_seconds += figs.offline_seconds
        return _assemble(snap, agency_id, month, now, hall_ids, window_figs, staff_figs,
                         staff_keys, people)  # fmt: skip


async def refresh_rollup(db: Database, snap: DirectorySnapshot, now: datetime) -> None:
    """Roll up the finished days of this month and of the last, and the current day's hours,
    ahead of any report: for a periodic job (hourly), so that no report waits for a month's
    days (the first province report of an unrolled 1M-call month spends ~26 s rolling it up)
    or for the day's hours."""
    this = month_of(now)
    last = month_of(day_start(local_day(now).replace(day=1)) - ONE_DAY)
    for month in (last, this):
        days = finished_days(month, now)
        if days:
            await _refresh(db, snap, month, days, now)
    today = _today_hours(day_start(local_day(now)), month_bounds(this)[1], now)
    if today:
        await _refresh_hours(db, this, today, now)


# --- SQL ------------------------------------------------------------------------------------


async def _refresh(
    db: Database, snap: DirectorySnapshot, month: str, days: list[date], now: datetime
) -> None:
    """Roll up the finished days never rolled up, or changed since."""
    async with db.connect() as conn:
        calls = await rollup.stale_days(conn, rollup.CALLS, days)
        offline = await rollup.stale_days(conn, rollup.OFFLINE, days)
    if calls:
        await rollup.rebuild_calls(db, calls, now)
    if offline:
        await rollup.rebuild_offline(db, snap, month, offline, now)
    first, after = days[0], days[-1] + ONE_DAY
    for part in (rollup.CALLS, rollup.OFFLINE):
        async with db.connect() as conn:
            current = await rollup.span_current(conn, part, month, first, after)
        if not current:
            await rollup.compact(db, part, month, first, after, now)


async def _rolled(
    conn: AsyncConnection,
    hall_ids: list[int] | None,
    month: str,
    first: date,
    after: date,
    today: list[int],
) -> tuple[Parts, bool]:
    return await rollup.read_calls(conn, hall_ids, month, first, after, today)


async def _refresh_hours(db: Database, month: str, today: list[int], now: datetime) -> None:
    await hours.refresh(db, month, today, now)


async def _rolled_hours(
    conn: AsyncConnection, hall_ids: list[int] | None, today: list[int]
) -> tuple[Parts, set[int]]:
    return await hours.read(conn, hall_ids, today)


async def _live(
    conn: AsyncConnection,
    hall_ids: list[int] | None,
    start: datetime,
    end: datetime,
    few: bool = False,
) -> Parts:
    return await aggregate(conn, start=start, end=end, hall_ids=hall_ids, by_day=False, few=few)


def _live_spans(
    live_from: datetime, end: datetime, running: bool, rolled: set[int]
) -> list[tuple[datetime, datetime, bool]]:
    """What to aggregate live, as (start, end, few): from ``live_from`` on, but for the
    current day's hours rolled up (``running``) only those not, and the days after it."""
    if live_from >= end:
        return []
    if not running:
        return [(live_from, end, False)]
    tomorrow = min(live_from + ONE_DAY, end)
    rest = sorted(set(range(hour_of(live_from), hour_of(tomorrow))) - rolled)
    spans = [(hour_start(a), hour_start(b), True) for a, b in hours.runs(rest)]
    if tomorrow < end:  # days ahead: normally no calls yet
        spans.append((tomorrow, end, False))
    return spans


def _today_hours(live_from: datetime, end: datetime, now: datetime) -> list[int]:
    """While the month runs, the hours of its current day to roll up: all but the one in
    progress. Those after it normally hold no calls yet; rolled up (empty), they stay
    current until one comes, which marks its hour stale, to be read live until it is over."""
    if not live_from <= now < end:
        return []
    in_progress = hour_of(now)
    day = range(hour_of(live_from), hour_of(min(live_from + ONE_DAY, end)))
    return [hour for hour in day if hour != in_progress]


def _merge(
    parts: Parts, window_figs: dict[int, Figures], staff_figs: dict[StaffKey, Figures]
) -> None:
    with gc_paused():
        for (_day, window_id), figs in parts.windows.items():
            if window_id in window_figs:
                window_figs[window_id].add(figs)
            else:
                window_figs[window_id] = figs
        for (_day, window_id, account_id), figs in parts.staff.items():
            key = (window_id, account_id)
            if key in staff_figs:
                staff_figs[key].add(figs)
            else:
                staff_figs[key] = figs


async def _misses(
    conn: AsyncConnection,
    hall_ids: list[int] | None,
    month: str,
    staff_figs: dict[StaffKey, Figures],
) -> None:
    """Read live, the verdicts change for weeks: one row per staff member and window."""
    m = s.misses
    source: Any = m
    where: list[Any] = [m.c.month == month]
    if hall_ids is not None:
        source = m.join(s.windows, s.windows.c.id == m.c.window_id)
        where.append(s.windows.c.hall_id.in_(hall_ids))
    counts = [sa.func.count().filter(m.c.status == status) for status in STATUSES]
    for r in await conn.execute(
        sa.select(m.c.window_id, m.c.account_id, *counts)
        .select_from(source)
        .where(*where)
        .group_by(m.c.window_id, m.c.account_id)
    ):
        misses = staff_figs[(r.window_id, r.account_id)].misses
        for status, n in zip(STATUSES, r[2:], strict=True):
            if n:
                misses[status] += int(n)


async def _people(conn: AsyncConnection, account_ids: set[int]) -> dict[int, Any]:
    if not account_ids:
        return {}
    a = s.accounts.c
    ids = sorted(account_ids)
    if conn.dialect.name == "postgresql":  # one array parameter, not 10,000
        wanted: Any = a.id == sa.any_(sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.Integer)))
    else:
        wanted = a.id.in_(ids)
    return {
        r.id: r
        for r in await conn.execute(
            sa.select(a.id, a.username, a.display_name, a.mobile).where(wanted)
        )
    }


def _staff_keys(
    snap: DirectorySnapshot, hall_ids: list[int], staff_figs: dict[StaffKey, Figures]
) -> list[StaffKey]:
    """Staff assigned to the home windows in scope, plus anyone with figures there (someone
    moved to another window since still answers for this month)."""
    halls = set(hall_ids)
    keys = {key for key in staff_figs if key[1] is not None}
    for window in snap.windows.values():
        if window.hall_id in halls and window.home_side:
            keys.update((window.id, account.id) for account in snap.staff.get(window.id, ()))
    return sorted(keys)


async def _offline(
    conn: AsyncConnection,
    snap: DirectorySnapshot,
    month: str,
    staff_keys: list[StaffKey],
    staff_figs: dict[StaffKey, Figures],
    end: datetime,
    done: list[date],
) -> None:
    """R2: office-hours time of each staff member's window not covered by online or busy
    presence, absences excepted. Only the elapsed part of the current month counts.

    Rolled-up days plus the rest live; a staff member with an absence in the month, or
    without a rolled-up row for every finished day under the current office hours (newly
    assigned, hours or holidays changed), is computed live over the whole month."""
    start = month_bounds(month)[0]
    if not staff_keys or end <= start:
        return
    account_ids = {account_id for _w, account_id in staff_keys}
    a = s.absences
    absent: dict[int, list[Interval]] = defaultdict(list)
    for r in await conn.execute(
        sa.select(a.c.account_id, a.c.starts_at, a.c.ends_at).where(
            a.c.starts_at < end, a.c.ends_at > start
        )
    ):
        if r.account_id in account_ids:
            absent[r.account_id].append((r.starts_at, r.ends_at))
    # Halls share a few sets of office hours: each set's opening intervals once, in UTC like
    # the presence rows (comparing Shanghai with UTC datetimes costs a zone lookup each time)
    live_from = day_start(done[-1] + ONE_DAY) if done else start
    opening: dict[tuple[Any, ...], tuple[str, list[Interval], list[Interval]]] = {}
    for periods, (key, month_open) in rollup.month_opening(snap, month).items():
        hours = [(x, min(y, end)) for x, y in month_open if x < end]
        unrolled = [(max(x, live_from), y) for x, y in hours if y > live_from]
        opening[periods] = (key, hours, unrolled)
    rolled = await rollup.read_offline(conn, month, done[0], done[-1] + ONE_DAY) if done else {}
    whole: list[tuple[StaffKey, list[Interval]]] = []
    rest: list[tuple[StaffKey, list[Interval], int]] = []
    for window_id, account_id in staff_keys:
        if window_id not in snap.windows:
            continue
        key, hours, unrolled = opening[snap.window_periods(window_id)]
        got = rolled.get((account_id, key))
        if got is not None and got[1] == len(done) and account_id not in absent:
            rest.append(((window_id, account_id), unrolled, got[0]))
        else:
            whole.append(((window_id, account_id), hours))
    if whole:
        online = await rollup.presence(conn, start, end, {k[1] for k, _h in whole})
        for k, hours in whole:
            pieces = offline_intervals(hours, online.get(k[1], ()), absent.get(k[1], ()))
            staff_figs[k].offline_seconds = _seconds(pieces)
    if rest:
        online = await rollup.presence(conn, live_from, end) if live_from < end else {}
        for k, unrolled, rolled_us in rest:
            pieces = offline_intervals(unrolled, online.get(k[1], ())) if unrolled else []
            staff_figs[k].offline_seconds = (rolled_us + _us(pieces)) / 1_000_000


def _us(intervals: list[Interval]) -> int:
    return sum(microseconds(a, b) for a, b in intervals)


def _seconds(intervals: list[Interval]) -> float:
    """In whole microseconds, so the sum over days and over the month are the same number."""
    return _us(intervals) / 1_000_000


# --- rows -----------------------------------------------------------------------------------


def _assemble(
    snap: DirectorySnapshot,
    agency_id: int,
    month: str,
    now: datetime,
    hall_ids: list[int],
    window_figs: dict[int, Figures],
    staff_figs: dict[StaffKey, Figures],
    staff_keys: list[StaffKey],
    people: dict[int, Any],
) -> dict[str, Any]:
    """Rows in reading order: the total, then each agency, its halls, their windows, staff."""
    halls = set(hall_ids)
    windows = sorted(
        (
            w
            for w in snap.windows.values()
            if w.hall_id in halls and (w.home_side or w.id in window_figs)
        ),
        key=lambda w: w.code,
    )
    windows_by_hall: dict[int, list[Any]] = defaultdict(list)
    for w in windows:
        windows_by_hall[w.hall_id].append(w)
    halls_by_agency: dict[int, list[Any]] = defaultdict(list)
    for h in sorted(halls):
        halls_by_agency[snap.halls[h].agency_id].append(snap.halls[h])
    staff_by_window: dict[int, list[StaffKey]] = defaultdict(list)
    for key in staff_keys:
        staff_by_window[key[0]].append(key)

    total = Figures()
    agency_rows: list[dict[str, Any]] = []
    for agency in sorted((snap.agencies[a] for a in halls_by_agency), key=lambda a: a.region_code):
        agency_figs = Figures()
        hall_rows: list[dict[str, Any]] = []
        for hall in sorted(halls_by_agency[agency.id], key=lambda h: h.name):
            hall_figs = Figures()
            window_rows: list[dict[str, Any]] = []
            for window in windows_by_hall[hall.id]:
                figs = window_figs[window.id] if window.id in window_figs else Figures()
                hall_figs.add(figs)
                where = {"agency": _agency(agency), "hall": _hall(hall), "window": _window(window)}
                window_rows.append({"level": "window", **where, "staff": None, **figs.as_dict()})
                for key in staff_by_window.get(window.id, []):
                    person = staff_figs[key] if key in staff_figs else Figures()
                    window_rows.append(
                        {"level": "staff", **where, "staff": _person(people.get(key[1]), key[1]),
                         **person.as_dict()}
                    )  # fmt: skip
            if not window_rows:
                continue
            agency_figs.add(hall_figs)
            hall_rows.append(
                {"level": "hall", "agency": _agency(agency), "hall": _hall(hall), "window": None,
                 "staff": None, **hall_figs.as_dict()}
            )  # fmt: skip
            hall_rows.extend(window_rows)
        if not hall_rows:
            continue
        total.add(agency_figs)
        agency_rows.append(
            {"level": "agency", "agency": _agency(agency), "hall": None, "window": None,
             "staff": None, **agency_figs.as_dict()}
        )  # fmt: skip
        agency_rows.extend(hall_rows)
    top = snap.agency(agency_id)
    total_row = {"level": "total", "agency": _agency(top), "hall": None, "window": None,
                 "staff": None, **total.as_dict()}  # fmt: skip
    return {
        "month": month,
        "generated_at": now.isoformat(),
        "jurisdiction": _agency(top),
        "rows": [total_row, *agency_rows],
    }


def _agency(agency: Any) -> dict[str, Any]:
    return {"id": agency.id, "region_code": agency.region_code, "name": agency.name}


def _hall(hall: Any) -> dict[str, Any]:
    return {"id": hall.id, "name": hall.name}


def _window(window: Any) -> dict[str, Any]:
    return {"id": window.id, "code": window.code, "name": window.name}


def _person(row: Any, account_id: int) -> dict[str, Any]:
    if row is None:
        return {"id": account_id, "username": None, "display_name": None, "mobile": ""}
    return {
        "id": row.id,
        "username": row.username,
        "display_name": row.display_name,
        "mobile": mask_phone(row.mobile) if row.mobile else "",
    }
