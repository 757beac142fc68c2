"""The monthly report (R2, R10, R12, R13): per agency, hall, window and staff member.

The month's calls are aggregated in the database in two GROUP BY statements whatever their
number: one over the calls (with the callers' ratings), one over the staff rung. Time to
answer comes back as a histogram of whole seconds, so Python only adds up grouped figures
from staff to windows, halls, agencies and the total and reads nearest-rank percentiles off
the sums. Offline minutes come from presence intervals clipped to office hours.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.office_hours import open_intervals
from directory.snapshot import DirectorySnapshot
from oversight.offline import ONLINE_STATUSES, Interval, offline_seconds
from oversight.rules import STATUSES, month_bounds
from oversight.stats import nearest_rank
from storage import schema as s
from storage.database import Database
from tongban.masking import mask_phone

LEVELS = ("total", "agency", "hall", "window", "staff")


@dataclass
class Figures:
    """One report row's numbers; they all add up across rows (percentiles via ``waits``)."""

    requests: int = 0
    answered: int = 0
    answered_late: int = 0
    unnecessary: int = 0
    decline_reasons: Counter[str] = field(default_factory=Counter)
    misses: Counter[str] = field(default_factory=Counter)
    rating_sum: float = 0.0
    ratings: int = 0
    offline_seconds: float = 0.0
    waits: Counter[int] = field(default_factory=Counter)  # seconds to answer -> calls

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
        self.waits.update(other.waits)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "answer_rate": round(self.answered / self.requests, 4) if self.requests else None,
            "answer_p50_s": nearest_rank(self.waits, 50),
            "answer_p90_s": nearest_rank(self.waits, 90),
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
        await _calls(conn, calls_in_scope, window_figs, staff_figs)
        await _rung(conn, calls_in_scope, staff_figs)
        await _misses(conn, hall_ids, month, staff_figs)
        staff_keys = _staff_keys(snap, hall_ids, staff_figs)
        people = await _people(conn, {account_id for _w, account_id in staff_keys})
        await _offline(conn, snap, staff_keys, staff_figs, start, min(end, now))
    # windows get declines, misses and offline time from their staff rows; the rest per call
    for (window_id, _account), figs in staff_figs.items():
        window_figs[window_id].decline_reasons.update(figs.decline_reasons)
        window_figs[window_id].misses.update(figs.misses)
        window_figs[window_id].offline_seconds += figs.offline_seconds
    return _assemble(snap, agency_id, month, now, hall_ids, window_figs, staff_figs, staff_keys,
                     people)  # fmt: skip


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


async def _calls(
    conn: AsyncConnection,
    where: list[Any],
    window_figs: dict[int, Figures],
    staff_figs: dict[StaffKey, Figures],
) -> None:
    """Requests, answers, lateness, unnecessary calls, the callers' ratings (R13) and the
    histogram of time to answer, grouped by window, answerer and whole second."""
    c = s.calls.c
    caller = s.call_members.alias("caller")
    wait = _answer_seconds(conn.dialect.name).label("wait")
    for r in await conn.execute(
        sa.select(
            c.window_id,
            c.answered_by,
            wait,
            sa.func.count().label("requests"),
            sa.func.count(c.answered_at).label("answered"),
            _flag(c.answered_late).label("late"),
            _flag(c.unnecessary).label("unnecessary"),
            sa.func.sum(caller.c.rating).label("rating_sum"),
            sa.func.count(caller.c.rating).label("ratings"),
        )
        .select_from(
            _from_calls().outerjoin(
                caller, sa.and_(caller.c.call_id == c.id, caller.c.role == "caller")
            )
        )
        .where(*where)
        .group_by(c.window_id, c.answered_by, wait)
    ):
        part = Figures(
            requests=int(r.requests),
            answered=int(r.answered),
            answered_late=int(r.late),
            unnecessary=int(r.unnecessary),
            rating_sum=float(r.rating_sum or 0),
            ratings=int(r.ratings),
        )
        if r.wait is not None and r.answered:
            part.waits[int(r.wait)] = int(r.answered)
        window_figs[r.window_id].add(part)
        if r.answered_by is not None and r.answered:
            # a staff row counts the calls that rang them (``_rung``), not these
            part.requests = part.unnecessary = 0
            staff_figs[(r.window_id, r.answered_by)].add(part)
    for r in await conn.execute(
        sa.select(c.window_id, c.unnecessary_by, sa.func.count().label("n"))
        .select_from(_from_calls())
        .where(*where, c.unnecessary.is_(True), c.unnecessary_by.is_not(None))
        .group_by(c.window_id, c.unnecessary_by)
    ):
        staff_figs[(r.window_id, r.unnecessary_by)].unnecessary += int(r.n)


async def _rung(
    conn: AsyncConnection, where: list[Any], staff_figs: dict[StaffKey, Figures]
) -> None:
    """Per staff member: the calls that rang them, and their declines by reason (R10)."""
    m = s.call_members
    for r in await conn.execute(
        sa.select(
            s.calls.c.window_id,
            m.c.account_id,
            m.c.decline_reason,
            sa.func.count().label("rung"),
            sa.func.count(m.c.declined_at).label("declined"),
        )
        .select_from(
            _from_calls().join(m, sa.and_(m.c.call_id == s.calls.c.id, m.c.role == "callee"))
        )
        .where(*where)
        .group_by(s.calls.c.window_id, m.c.account_id, m.c.decline_reason)
    ):
        figs = staff_figs[(r.window_id, r.account_id)]
        figs.requests += int(r.rung)
        if r.declined:
            reason = (r.decline_reason or "").strip() or "（未填写）"
            figs.decline_reasons[reason] += int(r.declined)


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
    """Whole seconds from request to answer, rounded half up; NULL for unanswered calls."""
    c = s.calls.c
    if dialect == "sqlite":
        seconds = (sa.func.julianday(c.answered_at) - sa.func.julianday(c.requested_at)) * 86400.0
        return sa.cast(seconds + 0.5, sa.Integer)  # truncates: floor for positive values
    interval = sa.type_coerce(c.answered_at, sa.DateTime) - sa.type_coerce(
        c.requested_at, sa.DateTime
    )
    return sa.cast(sa.func.floor(sa.extract("epoch", interval) + 0.5), sa.Integer)


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
    # Halls share a few sets of office hours: compute each set's opening intervals once, in
    # UTC like the presence rows (comparing Shanghai with UTC datetimes costs a zone lookup
    # each time; bench/report measured 13.6 s against 1.0 s for 10,000 staff).
    by_periods: dict[tuple[Any, ...], list[Interval]] = {}
    for window_id, account_id in staff_keys:
        if window_id not in snap.windows:
            continue
        periods = snap.window_periods(window_id)
        if periods not in by_periods:
            by_periods[periods] = [
                (a.astimezone(UTC), b.astimezone(UTC))
                for a, b in open_intervals(periods, snap.calendar, start, end)
            ]
        staff_figs[(window_id, account_id)].offline_seconds = offline_seconds(
            by_periods[periods], online[account_id], absent[account_id]
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
                figs = window_figs.get(window.id, Figures())
                hall_figs.add(figs)
                where = {"agency": _agency(agency), "hall": _hall(hall), "window": _window(window)}
                window_rows.append({"level": "window", **where, "staff": None, **figs.as_dict()})
                for key in staff_by_window.get(window.id, []):
                    person = staff_figs.get(key, Figures())
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
