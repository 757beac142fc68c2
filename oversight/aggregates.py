"""The report's aggregation of raw calls, in the database, per window and staff member.

Used twice with the same statements, so both give the same figures: live, over the part of
the month that is not rolled up (grouped per window and staff member), and by the rollup
(``oversight.rollup``), over finished days (grouped per day as well). Time to answer comes
back as the whole seconds of each answered call, one text per window and answerer, counted
into histograms in C, so Python only adds up grouped figures.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from oversight.figures import Figures
from storage import schema as s

UNSTATED = "（未填写）"  # a decline without a reason (R10 asks for one; old rows may lack it)

WindowKey = tuple[date | None, int]  # (day or None, window id)
StaffDayKey = tuple[date | None, int, int]  # (day or None, window id, account id)


@dataclass
class Parts:
    """Figures per window (all its calls) and per staff member of a window (the calls that
    rang them, those they answered, those they marked unnecessary), per day when grouped
    by day, else with day None."""

    windows: defaultdict[WindowKey, Figures] = field(default_factory=lambda: defaultdict(Figures))
    staff: defaultdict[StaffDayKey, Figures] = field(default_factory=lambda: defaultdict(Figures))
    # waits of answered calls with no answerer recorded: in ``windows`` but in no staff row
    unattributed: defaultdict[WindowKey, Counter[int]] = field(
        default_factory=lambda: defaultdict(Counter)
    )


def decline_reason(raw: str | None) -> str:
    return (raw or "").strip() or UNSTATED


def local_day(dialect: str, column: Any) -> Any:
    """The Asia/Shanghai date of a stored UTC timestamp (China keeps UTC+8 all year)."""
    if dialect == "sqlite":
        return sa.func.date(column, sa.literal_column("'+8 hours'"))
    return sa.cast(sa.func.timezone(sa.literal_column("'Asia/Shanghai'"), column), sa.Date)


def as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def answer_seconds(dialect: str) -> Any:
    """Whole seconds from request to answer, rounded half up; NULL for unanswered calls."""
    c = s.calls.c
    if dialect == "sqlite":
        seconds = (sa.func.julianday(c.answered_at) - sa.func.julianday(c.requested_at)) * 86400.0
        return sa.cast(seconds + 0.5, sa.Integer)  # truncates: floor for positive values
    interval = sa.type_coerce(c.answered_at, sa.DateTime) - sa.type_coerce(
        c.requested_at, sa.DateTime
    )
    return sa.cast(sa.func.floor(sa.extract("epoch", interval) + 0.5), sa.Integer)


def _flag(column: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((column, 1), else_=0)), 0)


async def aggregate(
    conn: AsyncConnection,
    *,
    start: datetime,
    end: datetime,
    hall_ids: Sequence[int] | None,
    by_day: bool,
    few: bool = False,
) -> Parts:
    """The calls requested in [start, end) at windows of ``hall_ids`` (None: every hall).

    ``few``: an hour or a few of calls, whose members PostgreSQL is made to look up by call
    (its pkey) rather than hash against the whole ``call_members`` table: the planner prices
    ~25,000 lookups above a parallel scan of 4,000,000 rows, which takes longer (bench/report:
    0.34 s against 0.52 s for the 25,700 calls of an afternoon, and it grows with the table).
    """
    dialect = conn.dialect.name
    if few and dialect == "postgresql":
        await conn.execute(sa.text("SET LOCAL enable_hashjoin = off"))
        await conn.execute(sa.text("SET LOCAL enable_mergejoin = off"))
        parts = await aggregate(conn, start=start, end=end, hall_ids=hall_ids, by_day=by_day)
        # (an error aborts the transaction, which drops the settings with it)
        await conn.execute(sa.text("SET LOCAL enable_hashjoin TO DEFAULT"))
        await conn.execute(sa.text("SET LOCAL enable_mergejoin TO DEFAULT"))
        return parts
    c = s.calls.c
    where: list[Any] = [c.requested_at >= start, c.requested_at < end]
    source: Any = s.calls
    if hall_ids is not None:
        source = s.calls.join(s.windows, s.windows.c.id == c.window_id)
        where.append(s.windows.c.hall_id.in_(hall_ids))
    day = local_day(dialect, c.requested_at).label("day") if by_day else None
    days = [day] if day is not None else []
    parts = Parts()

    def day_of(row: Any) -> date | None:
        return as_date(row.day) if by_day else None

    # requests, answers, lateness, unnecessary calls, the callers' ratings (R13) per window
    # and answerer, for all calls (the window's row) and for the answered ones (the
    # answerer's), with the whole seconds to answer of each answered call as text: one row
    # per window and answerer, not one per whole second (bench/report: 36,000 rows a day)
    caller = s.call_members.alias("caller")
    rated_caller = sa.and_(
        caller.c.call_id == c.id, caller.c.role == "caller", caller.c.rating.is_not(None)
    )
    answered = c.answered_at.is_not(None)
    for r in await conn.execute(
        sa.select(
            *days,
            c.window_id,
            c.answered_by,
            sa.func.count().label("requests"),
            sa.func.count(c.answered_at).label("answered"),
            _flag(c.answered_late).label("late"),
            _flag(sa.and_(answered, c.answered_late)).label("answered_late"),
            _flag(c.unnecessary).label("unnecessary"),
            sa.func.sum(caller.c.rating).label("rating_sum"),
            sa.func.count(caller.c.rating).label("ratings"),
            sa.func.sum(sa.case((answered, caller.c.rating))).label("answered_rating_sum"),
            sa.func.count(sa.case((answered, caller.c.rating))).label("answered_ratings"),
            sa.func.aggregate_strings(sa.cast(answer_seconds(dialect), sa.String), ",").label(
                "waits"
            ),
        )
        .select_from(source.outerjoin(caller, rated_caller))
        .where(*where)
        .group_by(*days, c.window_id, c.answered_by)
    ):
        d = day_of(r)
        waits: Counter[int] = Counter(map(int, r.waits.split(","))) if r.waits else Counter()
        window = Figures(
            requests=int(r.requests),
            answered=int(r.answered),
            answered_late=int(r.late),
            unnecessary=int(r.unnecessary),
            rating_sum=float(r.rating_sum or 0),
            ratings=int(r.ratings),
            waits=waits,
        )
        parts.windows[(d, r.window_id)].add(window)
        if r.answered_by is not None and r.answered:
            # a staff row counts the calls that rang them (below), not these
            staff = Figures(
                answered=int(r.answered),
                answered_late=int(r.answered_late),
                rating_sum=float(r.answered_rating_sum or 0),
                ratings=int(r.answered_ratings),
                waits=waits,
            )
            parts.staff[(d, r.window_id, r.answered_by)].add(staff)
        elif waits:
            parts.unattributed[(d, r.window_id)].update(waits)

    for r in await conn.execute(
        sa.select(*days, c.window_id, c.unnecessary_by, sa.func.count().label("n"))
        .select_from(source)
        .where(*where, c.unnecessary.is_(True), c.unnecessary_by.is_not(None))
        .group_by(*days, c.window_id, c.unnecessary_by)
    ):
        parts.staff[(day_of(r), r.window_id, r.unnecessary_by)].unnecessary += int(r.n)

    # per staff member: the calls that rang them, and their declines by reason (R10)
    m = s.call_members
    for r in await conn.execute(
        sa.select(
            *days,
            c.window_id,
            m.c.account_id,
            m.c.decline_reason,
            sa.func.count().label("rung"),
            sa.func.count(m.c.declined_at).label("declined"),
        )
        .select_from(source.join(m, sa.and_(m.c.call_id == c.id, m.c.role == "callee")))
        .where(*where)
        .group_by(*days, c.window_id, m.c.account_id, m.c.decline_reason)
    ):
        figs = parts.staff[(day_of(r), r.window_id, r.account_id)]
        figs.requests += int(r.rung)
        if r.declined:
            figs.decline_reasons[decline_reason(r.decline_reason)] += int(r.declined)
    return parts
