"""The monthly report (R2, R10, R12, R13): per agency, hall, window and staff member.

Calls are aggregated in the database, a handful of GROUP BY statements over one month's calls
whatever their number; Python only adds up the already grouped figures from windows to halls,
agencies and the total. Time to answer percentiles are nearest-rank percentiles computed with
window functions, which PostgreSQL and SQLite both have (PostgreSQL's ``percentile_disc``
gives the same numbers). Offline minutes come from presence intervals clipped to office hours.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.office_hours import open_intervals
from directory.snapshot import DirectorySnapshot
from oversight.offline import ONLINE_STATUSES, Interval, offline_seconds
from oversight.rules import STATUSES, month_bounds
from storage import schema as s
from storage.database import Database
from tongban.masking import mask_phone

LEVELS = ("total", "agency", "hall", "window", "staff")
PERCENTILES = (50, 90)


@dataclass
class Figures:
    """One report row's numbers. Everything but the percentiles adds up across rows."""

    requests: int = 0
    answered: int = 0
    answered_late: int = 0
    unnecessary: int = 0
    decline_reasons: Counter[str] = field(default_factory=Counter)
    misses: Counter[str] = field(default_factory=Counter)
    rating_sum: float = 0.0
    ratings: int = 0
    offline_seconds: float = 0.0
    p50: float | None = None
    p90: float | None = None

    def add(self, other: Figures) -> None:
        self.requests += other.requests
        self.answered += other.answered
        self.answered_late += other.answered_late
        self.unnecessary += other.unnecessary
        self.decline_reasons.update(other.decline_reasons)
        self.misses.update(other.misses)
        self.rating_sum += other.rating_sum
        self.ratings += other.ratings
        self.offline_seconds += other.offline_seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "answer_rate": round(self.answered / self.requests, 4) if self.requests else None,
            "answer_p50_s": _round(self.p50, 1),
            "answer_p90_s": _round(self.p90, 1),
            "answered_late": self.answered_late,
            "misses": {status: self.misses.get(status, 0) for status in STATUSES},
            "declines": sum(self.decline_reasons.values()),
            "decline_reasons": [
                {"reason": reason, "count": count}
                for reason, count in sorted(
                    self.decline_reasons.items(), key=lambda i: (-i[1], i[0])
                )
            ],
            "unnecessary": self.unnecessary,
            "rating_avg": round(self.rating_sum / self.ratings, 2) if self.ratings else None,
            "ratings": self.ratings,
            "offline_minutes": round(self.offline_seconds / 60, 1),
        }


def _round(value: float | None, digits: int) -> float | None:
    return round(float(value), digits) if value is not None else None


StaffKey = tuple[int, int]  # (window id, account id)


async def monthly_report(
    db: Database, snap: DirectorySnapshot, *, agency_id: int, month: str, now: datetime
) -> dict[str, Any]:
    """The report over ``agency_id`` and everything below it for one Asia/Shanghai month."""
    start, end = month_bounds(month)
    scope = snap.subtree(agency_id)
    hall_ids = sorted(h.id for h in snap.halls.values() if h.agency_id in scope)
    window_figs: dict[int, Figures] = defaultdict(Figures)
    staff_figs: dict[StaffKey, Figures] = defaultdict(Figures)
    async with db.connect() as conn:
        calls_in_scope = _calls_in_scope(hall_ids, start, end)
        await _call_counts(conn, calls_in_scope, window_figs, staff_figs)
        await _declines(conn, calls_in_scope, staff_figs)
        await _misses(conn, hall_ids, month, staff_figs)
        percentiles = await _percentiles(conn, hall_ids, start, end)
        staff_keys = _staff_keys(snap, hall_ids, staff_figs)
        people = await _people(conn, {account_id for _w, account_id in staff_keys})
        await _offline(conn, snap, staff_keys, staff_figs, start, min(end, now))
    # windows get their declines and misses from their staff rows; the rest is per call
    for (window_id, _account), figs in staff_figs.items():
        window_figs[window_id].decline_reasons.update(figs.decline_reasons)
        window_figs[window_id].misses.update(figs.misses)
        window_figs[window_id].offline_seconds += figs.offline_seconds
    return _assemble(snap, agency_id, month, now, hall_ids, window_figs, staff_figs, staff_keys,
                     people, percentiles)  # fmt: skip


# --- SQL ------------------------------------------------------------------------------------


def _calls_in_scope(hall_ids: list[int], start: datetime, end: datetime) -> list[Any]:
    return [
        s.calls.c.requested_at >= start,
        s.calls.c.requested_at < end,
        s.windows.c.hall_id.in_(hall_ids),
    ]


def _from_calls() -> Any:
    return s.calls.join(s.windows, s.windows.c.id == s.calls.c.window_id)


def _flag(column: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((column, 1), else_=0)), 0)


async def _call_counts(
    conn: AsyncConnection,
    where: list[Any],
    window_figs: dict[int, Figures],
    staff_figs: dict[StaffKey, Figures],
) -> None:
    c = s.calls.c
    caller = s.call_members.alias("caller")
    rated = _from_calls().outerjoin(
        caller, sa.and_(caller.c.call_id == c.id, caller.c.role == "caller")
    )
    # per window: requests, answered, late, unnecessary, the callers' ratings (R13)
    for r in await conn.execute(
        sa.select(
            c.window_id,
            sa.func.count().label("requests"),
            sa.func.count(c.answered_at).label("answered"),
            _flag(c.answered_late).label("late"),
            _flag(c.unnecessary).label("unnecessary"),
            sa.func.sum(caller.c.rating).label("rating_sum"),
            sa.func.count(caller.c.rating).label("ratings"),
        )
        .select_from(rated)
        .where(*where)
        .group_by(c.window_id)
    ):
        figs = window_figs[r.window_id]
        figs.requests, figs.answered = int(r.requests), int(r.answered)
        figs.answered_late, figs.unnecessary = int(r.late), int(r.unnecessary)
        figs.rating_sum, figs.ratings = float(r.rating_sum or 0), int(r.ratings)
    # per staff member: calls that rang them, and those they answered
    callee = s.call_members.alias("callee")
    for r in await conn.execute(
        sa.select(c.window_id, callee.c.account_id, sa.func.count().label("requests"))
        .select_from(
            _from_calls().join(callee, sa.and_(callee.c.call_id == c.id, callee.c.role == "callee"))
        )
        .where(*where)
        .group_by(c.window_id, callee.c.account_id)
    ):
        staff_figs[(r.window_id, r.account_id)].requests = int(r.requests)
    for r in await conn.execute(
        sa.select(
            c.window_id,
            c.answered_by,
            sa.func.count().label("answered"),
            _flag(c.answered_late).label("late"),
            sa.func.sum(caller.c.rating).label("rating_sum"),
            sa.func.count(caller.c.rating).label("ratings"),
        )
        .select_from(rated)
        .where(*where, c.answered_by.is_not(None), c.answered_at.is_not(None))
        .group_by(c.window_id, c.answered_by)
    ):
        figs = staff_figs[(r.window_id, r.answered_by)]
        figs.answered, figs.answered_late = int(r.answered), int(r.late)
        figs.rating_sum, figs.ratings = float(r.rating_sum or 0), int(r.ratings)
    for r in await conn.execute(
        sa.select(c.window_id, c.unnecessary_by, sa.func.count().label("n"))
        .select_from(_from_calls())
        .where(*where, c.unnecessary.is_(True), c.unnecessary_by.is_not(None))
        .group_by(c.window_id, c.unnecessary_by)
    ):
        staff_figs[(r.window_id, r.unnecessary_by)].unnecessary = int(r.n)


async def _declines(
    conn: AsyncConnection, where: list[Any], staff_figs: dict[StaffKey, Figures]
) -> None:
    """R10: every decline carries a reason; the report counts them per reason."""
    m = s.call_members
    for r in await conn.execute(
        sa.select(s.calls.c.window_id, m.c.account_id, m.c.decline_reason, sa.func.count())
        .select_from(_from_calls().join(m, m.c.call_id == s.calls.c.id))
        .where(*where, m.c.declined_at.is_not(None))
        .group_by(s.calls.c.window_id, m.c.account_id, m.c.decline_reason)
    ):
        reason = (r.decline_reason or "").strip() or "（未填写）"
        staff_figs[(r.window_id, r.account_id)].decline_reasons[reason] += int(r[3])


async def _misses(
    conn: AsyncConnection, hall_ids: list[int], month: str, staff_figs: dict[StaffKey, Figures]
) -> None:
    m = s.misses
    for r in await conn.execute(
        sa.select(m.c.window_id, m.c.account_id, m.c.status, sa.func.count())
        .select_from(m.join(s.windows, s.windows.c.id == m.c.window_id))
        .where(m.c.month == month, s.windows.c.hall_id.in_(hall_ids))
        .group_by(m.c.window_id, m.c.account_id, m.c.status)
    ):
        staff_figs[(r.window_id, r.account_id)].misses[r.status] += int(r[3])


def _answer_seconds(dialect: str) -> Any:
    c = s.calls.c
    if dialect == "sqlite":
        return (sa.func.julianday(c.answered_at) - sa.func.julianday(c.requested_at)) * 86400.0
    return sa.extract(
        "epoch",
        sa.type_coerce(c.answered_at, sa.DateTime) - sa.type_coerce(c.requested_at, sa.DateTime),
    )


async def _percentiles(
    conn: AsyncConnection, hall_ids: list[int], start: datetime, end: datetime
) -> dict[tuple[str, int | None, int | None], tuple[float | None, float | None]]:
    """Nearest-rank p50/p90 of time to answer for every level in one statement: rank the
    month's answered calls once per level, keep the first value whose rank reaches p% of n."""
    c = s.calls.c
    base = (
        sa.select(
            c.window_id.label("w"),
            s.windows.c.hall_id.label("h"),
            s.halls.c.agency_id.label("a"),
            c.answered_by.label("p"),
            _answer_seconds(conn.dialect.name).label("d"),
        )
        .select_from(_from_calls().join(s.halls, s.halls.c.id == s.windows.c.hall_id))
        .where(*_calls_in_scope(hall_ids, start, end), c.answered_at.is_not(None))
        .subquery("answered")
    )
    partitions: dict[str, list[Any]] = {
        "total": [],
        "agency": [base.c.a],
        "hall": [base.c.h],
        "window": [base.c.w],
        "staff": [base.c.w, base.c.p],
    }
    ranked_cols: list[Any] = [base.c.w, base.c.h, base.c.a, base.c.p, base.c.d]
    for level, keys in partitions.items():
        ranked_cols.append(
            sa.func.row_number()
            .over(partition_by=keys or None, order_by=base.c.d)
            .label(f"rn_{level}")
        )
        ranked_cols.append(sa.func.count().over(partition_by=keys or None).label(f"n_{level}"))
    ranked = sa.select(*ranked_cols).cte("ranked")
    selects = []
    none = sa.cast(sa.null(), sa.Integer)
    for level, keys in partitions.items():
        rn, n = ranked.c[f"rn_{level}"], ranked.c[f"n_{level}"]
        key_cols = [ranked.c[k.name] for k in keys]
        k1 = key_cols[0] if key_cols else none
        k2 = key_cols[1] if len(key_cols) > 1 else none
        selects.append(
            sa.select(
                sa.literal(level).label("level"),
                k1.label("k1"),
                k2.label("k2"),
                *[
                    sa.func.min(sa.case((rn * 100 >= p * n, ranked.c.d))).label(f"p{p}")
                    for p in PERCENTILES
                ],
            )
            .select_from(ranked)
            .group_by(*key_cols)
        )
    out: dict[tuple[str, int | None, int | None], tuple[float | None, float | None]] = {}
    for r in await conn.execute(sa.union_all(*selects)):
        out[(r.level, r.k1, r.k2)] = (r.p50, r.p90)
    return out


async def _people(conn: AsyncConnection, account_ids: set[int]) -> dict[int, Any]:
    if not account_ids:
        return {}
    return {
        r.id: r
        for r in await conn.execute(
            sa.select(
                s.accounts.c.id,
                s.accounts.c.username,
                s.accounts.c.display_name,
                s.accounts.c.mobile,
            ).where(s.accounts.c.id.in_(sorted(account_ids)))
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
    staff_keys: list[StaffKey],
    staff_figs: dict[StaffKey, Figures],
    start: datetime,
    end: datetime,
) -> None:
    """R2: office-hours time of each staff member's window not covered by online or busy
    presence, absences excepted. Only the elapsed part of the current month counts."""
    if not staff_keys or end <= start:
        return
    account_ids = sorted({account_id for _w, account_id in staff_keys})
    p = s.presence_intervals
    online: dict[int, list[Interval]] = defaultdict(list)
    for r in await conn.execute(
        sa.select(p.c.account_id, p.c.started_at, p.c.ended_at).where(
            p.c.account_id.in_(account_ids),
            p.c.status.in_(ONLINE_STATUSES),
            p.c.started_at < end,
            sa.or_(p.c.ended_at.is_(None), p.c.ended_at > start),
        )
    ):
        online[r.account_id].append((max(r.started_at, start), min(r.ended_at or end, end)))
    a = s.absences
    absent: dict[int, list[Interval]] = defaultdict(list)
    for r in await conn.execute(
        sa.select(a.c.account_id, a.c.starts_at, a.c.ends_at).where(
            a.c.account_id.in_(account_ids), a.c.starts_at < end, a.c.ends_at > start
        )
    ):
        absent[r.account_id].append((r.starts_at, r.ends_at))
    opening: dict[int, list[Interval]] = {}
    for window_id, account_id in staff_keys:
        if window_id not in snap.windows:
            continue
        if window_id not in opening:
            opening[window_id] = open_intervals(
                snap.window_periods(window_id), snap.calendar, start, end
            )
        staff_figs[(window_id, account_id)].offline_seconds = offline_seconds(
            opening[window_id], online[account_id], absent[account_id]
        )


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
    percentiles: dict[tuple[str, int | None, int | None], tuple[float | None, float | None]],
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
    staff_by_window: dict[int, list[StaffKey]] = defaultdict(list)
    for key in staff_keys:
        staff_by_window[key[0]].append(key)

    def with_pct(
        figs: Figures, level: str, k1: int | None = None, k2: int | None = None
    ) -> Figures:
        figs.p50, figs.p90 = percentiles.get((level, k1, k2), (None, None))
        return figs

    total = with_pct(Figures(), "total")
    agency_rows: list[dict[str, Any]] = []
    for agency in sorted(
        (snap.agencies[a] for a in {snap.halls[h].agency_id for h in halls}),
        key=lambda a: a.region_code,
    ):
        agency_figs = with_pct(Figures(), "agency", agency.id)
        hall_rows: list[dict[str, Any]] = []
        for hall in sorted(
            (snap.halls[h] for h in halls if snap.halls[h].agency_id == agency.id),
            key=lambda h: h.name,
        ):
            hall_figs = with_pct(Figures(), "hall", hall.id)
            window_rows: list[dict[str, Any]] = []
            for window in (w for w in windows if w.hall_id == hall.id):
                figs = with_pct(window_figs.get(window.id, Figures()), "window", window.id)
                hall_figs.add(figs)
                where = {"agency": _agency(agency), "hall": _hall(hall), "window": _window(window)}
                window_rows.append({"level": "window", **where, "staff": None, **figs.as_dict()})
                for key in staff_by_window.get(window.id, []):
                    person = with_pct(staff_figs.get(key, Figures()), "staff", *key)
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
