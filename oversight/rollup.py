"""The monthly report's daily rollup (issue 7): finished Asia/Shanghai days aggregated once.

Two parts, each with its own validity per day in ``report_days``:

- ``calls``: ``report_daily`` and ``report_daily_declines``, the output of
  ``oversight.aggregates.aggregate`` grouped per day.
- ``offline``: ``report_offline``, office-hours time without online or busy presence per day
  and staff member, keyed by a fingerprint of the month's opening intervals.

Database triggers (migration 0002) add 1 to a day's ``version`` in the transaction that
changes one of its calls, call members or presence intervals, however late (a rating, a
decline, an ``unnecessary`` mark, a presence interval closed or corrected). A rebuild first
makes sure the day's ``report_days`` row exists, then reads its version, then reads the
source rows and computes, and last, in a short transaction that locks the row, writes the
rows and records the version it read as built: a change committed before that version was
read is in the source rows; one after it bumps the version past it, so the day is rebuilt at
the next report. The reading and computing hold no lock: on SQLite a write transaction locks
the whole database, and the offline part's computing takes seconds for a month of 5,000
staff, which stalled every call request meanwhile (bench/signaling). Misses (their verdicts
change for weeks) and absences are not rolled up: the report reads them live.

Each part's current days of a month are then summed once into ``report_monthly`` /
``report_monthly_offline``; ``report_spans`` keeps which days and the sum of their built
versions, which any rebuild raises, so a stale sum is noticed and redone.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
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

log = logging.getLogger(__name__)

CALLS = "calls"
OFFLINE = "offline"
_BATCH = 1_000  # rows per INSERT statement (the event loop runs between two)
_YIELD_EVERY = 20  # staff members computed between two turns of the event loop (~4 ms)


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


async def _ensure(db: Database, part: str, days: Sequence[date]) -> None:
    """The days' validity rows exist (version 0 if new) before anything is read: from then on
    every change to a day bumps its version."""
    async with db.write() as conn:
        insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
        await conn.execute(
            insert(s.report_days)
            .values([{"day": day, "part": part, "version": 0} for day in days])
            .on_conflict_do_nothing()
        )


async def _versions(
    conn: AsyncConnection, part: str, days: Sequence[date], *, lock: bool = False
) -> dict[date, int]:
    """The days among ``days`` still to build, with their version now; ``lock``: the rows
    locked (PostgreSQL) until the transaction ends."""
    d = s.report_days.c
    query = sa.select(d.day, d.version, d.built_version).where(
        d.part == part, d.day >= min(days), d.day <= max(days)
    )
    rows = await conn.execute(query.with_for_update() if lock else query)
    wanted = set(days)
    return {
        as_date(r.day): int(r.version)
        for r in rows
        if as_date(r.day) in wanted and r.built_version != r.version
    }


Computed = dict[sa.Table, list[dict[str, Any]]]


async def _rebuild(
    db: Database,
    part: str,
    days: Sequence[date],
    now: datetime,
    compute: Callable[[AsyncConnection, list[date]], Awaitable[Computed]],
) -> None:
    """Roll up ``days`` of ``part`` (module docstring): per run of consecutive days, the
    validity rows made sure of, their versions read, ``compute`` (rows per table, each with
    a ``day``) run without a lock, then each day still to build written in a short
    transaction of its own: another node may have built some meanwhile."""
    for first, after in runs(days):
        span = [d for d in days if first <= d < after]
        await _ensure(db, part, span)
        async with db.connect() as conn:
            read = await _versions(conn, part, span)
            if not read:
                continue
            computed = await compute(conn, sorted(read))
        per_day: dict[date, Computed] = {day: {table: [] for table in computed} for day in read}
        for table, rows in computed.items():
            for row in rows:
                per_day[row["day"]][table].append(row)
        d = s.report_days.c
        for day in sorted(read):
            # a transaction per day: others' writes (a call request) wait for one day's rows,
            # not a month's (SQLite has one writer)
            async with db.write() as conn:
                if not await _versions(conn, part, [day], lock=True):
                    continue  # built by another node meanwhile
                for table, rows in per_day[day].items():
                    await conn.execute(sa.delete(table).where(table.c.day == day))
                    await _insert(conn, table, rows)
                await conn.execute(
                    sa.update(s.report_days)
                    .where(d.part == part, d.day == day)
                    .values(built_version=read[day], built_at=now)
                )
        async with db.write() as conn:
            await _analyze(conn, list(chain(*computed.values())), *computed)


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
    """Roll up the calls of ``days``."""

    async def compute(conn: AsyncConnection, todo: list[date]) -> Computed:
        rows: list[dict[str, Any]] = []
        decline_rows: list[dict[str, Any]] = []
        for a, b in runs(todo):
            parts = await aggregate(
                conn, start=day_start(a), end=day_start(b), hall_ids=None, by_day=True
            )
            daily_rows, reasons = _daily_rows(parts)
            rows.extend(daily_rows)
            decline_rows.extend(reasons)
        return {s.report_daily: rows, s.report_daily_declines: decline_rows}

    await _rebuild(db, CALLS, days, now, compute)


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


def _as_json(dialect: str) -> Any:
    return sa.func.json_group_object if dialect == "sqlite" else sa.func.json_object_agg


def _span(key: Any, first: Any, after: Any) -> list[Any]:
    """[first, after), or the keys listed in ``first`` when ``after`` is None."""
    return [key.in_(list(first))] if after is None else [key >= first, key < after]


def _daily_sums(first: Any, after: Any, hourly: bool = False) -> Any:
    """The rolled-up days [first, after) per window and staff member, declines as JSON (or
    the rolled-up hours listed in ``first``, numbered as in ``oversight.hours``)."""
    d = (s.report_hourly if hourly else s.report_daily).c
    x = (s.report_hourly_declines if hourly else s.report_daily_declines).c
    key, key_x = (d.hour, x.hour) if hourly else (d.day, x.day)
    sums = (
        sa.select(
            d.window_id,
            d.account_id,
            sa.func.sum(d.requests).label("requests"),
            sa.func.sum(d.answered).label("answered"),
            sa.func.sum(d.answered_late).label("answered_late"),
            sa.func.sum(d.unnecessary).label("unnecessary"),
            sa.func.sum(d.rating_sum).label("rating_sum"),
            sa.func.sum(d.ratings).label("ratings"),
            sa.func.aggregate_strings(d.waits, ",").label("waits"),
        )
        .where(*_span(key, first, after))
        .group_by(d.window_id, d.account_id)
        .subquery("sums")
    )
    by_reason = (
        sa.select(x.window_id, x.account_id, x.reason, sa.func.sum(x.declines).label("n"))
        .where(*_span(key_x, first, after))
        .group_by(x.window_id, x.account_id, x.reason)
        .subquery("by_reason")
    )
    return sums, by_reason


async def read_calls(
    conn: AsyncConnection,
    hall_ids: Sequence[int] | None,
    month: str,
    first: date,
    after: date,
    today: Sequence[int] = (),
) -> tuple[Parts, bool]:
    """The rolled-up days [first, after) summed per window and staff member, day None;
    ``hall_ids`` None: every window. From the month's sums when they are current, then with
    the current day's rolled-up ``today`` hours added in the same statement when their sum
    (``oversight.hours``) is current too: whether it was."""
    from oversight import hours  # (it imports this module)

    w = s.windows.c
    if await span_current(conn, CALLS, month, first, after):
        m = s.report_monthly.c
        columns: list[Any] = [
            m.window_id, m.account_id, m.requests, m.answered, m.answered_late, m.unnecessary,
            m.rating_sum, m.ratings, m.waits, m.declines,
        ]  # fmt: skip
        source: Any = sa.select(*columns).where(m.month == month)
        with_today = bool(today) and await hours.summed(conn, month, today)
        if with_today:
            t = s.report_today.c
            source = source.union_all(
                sa.select(
                    t.window_id, t.account_id, t.requests, t.answered, t.answered_late,
                    t.unnecessary, t.rating_sum, t.ratings, t.waits, t.declines,
                ).where(t.month == month)
            )  # fmt: skip
        u = source.subquery("u")
        query = sa.select(*u.c)
        if with_today:  # a row per window and staff member, both sums' waits and declines
            query = sa.select(
                u.c.window_id, u.c.account_id,
                *(sa.func.sum(u.c[k]).label(k) for k in (
                    "requests", "answered", "answered_late", "unnecessary", "rating_sum",
                    "ratings")),
                sa.func.aggregate_strings(u.c.waits, "|").label("waits"),
                sa.func.aggregate_strings(u.c.declines, "\n").label("declines"),
            ).group_by(u.c.window_id, u.c.account_id)  # fmt: skip
        if hall_ids is not None:
            query = query.join_from(u, s.windows, w.id == u.c.window_id).where(
                w.hall_id.in_(hall_ids)
            )
        return _summed_parts((await conn.execute(query)).all()), with_today
    return _parts(await _summed_days(conn, hall_ids, first, after)), False


async def _summed_days(
    conn: AsyncConnection,
    hall_ids: Sequence[int] | None,
    first: Any,
    after: Any,
    hourly: bool = False,
) -> Sequence[Any]:
    w = s.windows.c
    if conn.dialect.name == "postgresql":
        # hash the ~300,000 rows of a province month in memory rather than sort them on disk
        await conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    sums, by_reason = _daily_sums(first, after, hourly)
    reasons = (
        sa.select(
            by_reason.c.window_id,
            by_reason.c.account_id,
            _as_json(conn.dialect.name)(by_reason.c.reason, by_reason.c.n).label("declines"),
        )
        .group_by(by_reason.c.window_id, by_reason.c.account_id)
        .subquery("reasons")
    )
    source: Any = sums.outerjoin(
        reasons,
        sa.and_(reasons.c.window_id == sums.c.window_id, reasons.c.account_id == sums.c.account_id),
    )
    where: list[Any] = []
    if hall_ids is not None:
        source = source.join(s.windows, w.id == sums.c.window_id)
        where.append(w.hall_id.in_(hall_ids))
    return (
        await conn.execute(sa.select(*sums.c, reasons.c.declines).select_from(source).where(*where))
    ).all()


def _parts(rows: Sequence[Any]) -> Parts:
    parts = Parts()
    window_waits: defaultdict[int, list[list[int]]] = defaultdict(list)
    with gc_paused():
        for r in rows:
            figs = Figures(
                requests=int(r.requests),
                answered=int(r.answered),
                answered_late=int(r.answered_late),
                unnecessary=int(r.unnecessary),
                rating_sum=float(r.rating_sum),
                ratings=int(r.ratings),
            )
            if r.waits:
                waits = list(map(int, r.waits.split(",")))
                figs.waits.update(waits)
                window_waits[r.window_id].append(waits)
            if r.declines:
                reasons = r.declines if isinstance(r.declines, dict) else json.loads(r.declines)
                figs.decline_reasons.update({k: int(n) for k, n in reasons.items()})
            if r.account_id is None:
                parts.windows[(None, r.window_id)] = figs
            else:
                parts.staff[(None, r.window_id, r.account_id)] = figs
        # a window's waits are its own row's (calls answered by no one recorded) and its staff's
        for window_id, lists in window_waits.items():
            window = parts.windows[(None, window_id)]
            window.waits.clear()
            window.waits.update(chain.from_iterable(lists))  # counted in C, not key by key
    return parts


def _histogram_text(waits: Counter[int]) -> str | None:
    """ "values;counts", both ascending by value: a month of a staff member's waits in a
    third of the numbers, decoded without a Python loop."""
    if not waits:
        return None
    values = sorted(waits)
    return ",".join(map(str, values)) + ";" + ",".join(str(waits[v]) for v in values)


def _histogram(text: str) -> Counter[int]:
    """From one or more histograms, "|"-separated."""
    first, *more = text.split("|")
    values, counts = first.split(";")
    out = Counter(dict(zip(map(int, values.split(",")), map(int, counts.split(",")), strict=True)))
    for other in more:
        values, counts = other.split(";")
        out.update(dict(zip(map(int, values.split(",")), map(int, counts.split(",")), strict=True)))
    return out


def _summed_parts(rows: Sequence[Any]) -> Parts:
    """Parts from a month's sums, whose window rows hold all their calls' waits."""
    parts = Parts()
    with gc_paused():
        for r in rows:
            figs = Figures(
                requests=r.requests,
                answered=r.answered,
                answered_late=r.answered_late,
                unnecessary=r.unnecessary,
                rating_sum=float(r.rating_sum),
                ratings=r.ratings,
                waits=_histogram(r.waits) if r.waits else Counter(),
            )
            if r.declines:  # one JSON object a line (JSON text holds no raw newline)
                for text in r.declines.split("\n"):
                    figs.decline_reasons.update(json.loads(text))
            if r.account_id is None:
                parts.windows[(None, r.window_id)] = figs
            else:
                parts.staff[(None, r.window_id, r.account_id)] = figs
    return parts


# --- hours of the current day (``oversight.hours``) ----------------------------------------


def hourly_rows(parts: Parts, hour: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of ``report_hourly`` and ``report_hourly_declines`` for one hour's parts."""
    rows, declines = _daily_rows(parts)
    for row in chain(rows, declines):
        del row["day"]
        row["hour"] = hour
    return rows, declines


async def insert_rows(conn: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    await _insert(conn, table, rows)


async def read_hours(
    conn: AsyncConnection, hall_ids: Sequence[int] | None, hours: Sequence[int]
) -> Parts:
    """The rolled-up ``hours`` summed per window and staff member, day None."""
    return _parts(await _summed_days(conn, hall_ids, hours, None, hourly=True))


# --- a month's sums -------------------------------------------------------------------------


async def _state(conn: AsyncConnection, part: str, first: date, after: date) -> tuple[int, int]:
    """The sum of the built versions of the current days in [first, after), and their number."""
    d = s.report_days.c
    row = (
        await conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(d.built_version), 0), sa.func.count()).where(
                d.part == part, d.day >= first, d.day < after, d.built_version == d.version
            )
        )
    ).one()
    return int(row[0]), int(row[1])


async def span_current(
    conn: AsyncConnection, part: str, month: str, first: date, after: date
) -> bool:
    """Whether the month's sums cover exactly [first, after) as built now: every rebuild of
    a day raises its built version, so any change shows in the sum."""
    p = s.report_spans.c
    span = (
        await conn.execute(sa.select(s.report_spans).where(p.month == month, p.part == part))
    ).one_or_none()
    if span is None or span.after is None or as_date(span.after) != after:
        return False
    built, days = await _state(conn, part, first, after)
    return days == (after - first).days and (span.built, span.days) == (built, days)


async def compact(
    db: Database, part: str, month: str, first: date, after: date, now: datetime
) -> None:
    """Sum the month's rolled-up days [first, after) into its monthly rows, if every one of
    them is current. An optimisation only: given up when another report does the same."""
    async with db.connect() as conn:
        if conn.dialect.name == "postgresql":
            # the days' versions and rows read from one snapshot
            await conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            async with conn.begin(), db.writing(conn):  # SQLite: in the writers' queue
                await _compact(conn, part, month, first, after, now)
        except sa.exc.DBAPIError as err:
            code = getattr(err.orig, "sqlstate", None) or getattr(err.orig, "pgcode", None)
            if code not in ("40001", "40P01", "23505"):  # serialization, deadlock, duplicate
                raise
            log.info("report %s %s: summed by another report meanwhile (%s)", month, part, code)


async def _compact(
    conn: AsyncConnection, part: str, month: str, first: date, after: date, now: datetime
) -> None:
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    p = s.report_spans.c
    # the first statement writes: SQLite takes its write lock before reading anything
    await conn.execute(
        insert(s.report_spans).values(month=month, part=part).on_conflict_do_nothing()
    )
    await conn.execute(sa.select(p.month).where(p.month == month, p.part == part).with_for_update())
    if await span_current(conn, part, month, first, after):
        return
    built, days = await _state(conn, part, first, after)
    if days != (after - first).days:
        return  # a day changed since this report rebuilt it: summed at the next one
    if part == CALLS:
        await conn.execute(sa.delete(s.report_monthly).where(s.report_monthly.c.month == month))
        parts = _parts(await _summed_days(conn, None, first, after))
        await _insert(conn, s.report_monthly, monthly_rows(month, parts))
    else:
        o = s.report_offline.c
        await conn.execute(
            sa.delete(s.report_monthly_offline).where(s.report_monthly_offline.c.month == month)
        )
        await conn.execute(
            sa.insert(s.report_monthly_offline).from_select(
                ["month", "account_id", "hours_key", "offline_us", "days"],
                sa.select(
                    sa.literal(month, sa.String),
                    o.account_id,
                    o.hours_key,
                    sa.func.sum(o.offline_us),
                    sa.func.count(),
                )
                .where(o.day >= first, o.day < after)
                .group_by(o.account_id, o.hours_key),
            )
        )
    await conn.execute(
        sa.update(s.report_spans)
        .where(p.month == month, p.part == part)
        .values(after=after, built=built, days=days, built_at=now)
    )


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

    async def compute(conn: AsyncConnection, todo: list[date]) -> Computed:
        rows: list[dict[str, Any]] = []
        for a, b in runs(todo):
            lo, hi = day_start(a), day_start(b)
            online = await presence(conn, lo, hi)
            wanted = [day for day in todo if a <= day < b]
            for n, (account_id, periods) in enumerate(sorted(staff)):
                if n % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # a month of 5,000 staff is seconds of work
                key, month_open = opening[periods]
                clipped = [(max(x, lo), min(y, hi)) for x, y in month_open if x < hi and y > lo]
                seconds = by_day(offline_intervals(clipped, online.get(account_id, ())))
                rows.extend(
                    {"day": day, "account_id": account_id, "hours_key": key,
                     "offline_us": seconds.get(day, 0)}
                    for day in wanted
                )  # fmt: skip
        return {s.report_offline: rows}

    await _rebuild(db, OFFLINE, days, now, compute)


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
    conn: AsyncConnection, month: str, first: date, after: date
) -> dict[tuple[int, str], tuple[int, int]]:
    """(account, hours key) -> (microseconds offline, days rolled up) over [first, after),
    from the month's sums when they are current."""
    if await span_current(conn, OFFLINE, month, first, after):
        m = s.report_monthly_offline.c
        query = sa.select(m.account_id, m.hours_key, m.offline_us.label("us"), m.days).where(
            m.month == month
        )
    else:
        o = s.report_offline.c
        query = (
            sa.select(
                o.account_id,
                o.hours_key,
                sa.func.sum(o.offline_us).label("us"),
                sa.func.count().label("days"),
            )
            .where(o.day >= first, o.day < after)
            .group_by(o.account_id, o.hours_key)
        )
    return {
        (r.account_id, r.hours_key): (int(r.us), int(r.days)) for r in await conn.execute(query)
    }


def monthly_rows(month: str, parts: Parts) -> list[dict[str, Any]]:
    """Rows of ``report_monthly`` (or ``report_today``) from summed parts."""
    rows = [
        _monthly_row(month, window_id, None, figs)
        for (_day, window_id), figs in parts.windows.items()
    ]
    rows += [
        _monthly_row(month, window_id, account_id, figs)
        for (_day, window_id, account_id), figs in parts.staff.items()
    ]
    return rows


def _monthly_row(
    month: str, window_id: int, account_id: int | None, figs: Figures
) -> dict[str, Any]:
    return {
        "month": month, "window_id": window_id, "account_id": account_id,
        "requests": figs.requests, "answered": figs.answered,
        "answered_late": figs.answered_late, "unnecessary": figs.unnecessary,
        "rating_sum": int(figs.rating_sum), "ratings": figs.ratings,
        "waits": _histogram_text(figs.waits),
        "declines": json.dumps(dict(figs.decline_reasons), ensure_ascii=False)
        if figs.decline_reasons else None,
    }  # fmt: skip
