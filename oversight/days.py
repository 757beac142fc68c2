"""Asia/Shanghai days for the report's daily rollup, as pure functions.

A day is *finished* once its local midnight has passed; only finished days are rolled up,
the rest of the month is aggregated live. Office-hours time is split at local midnights in
whole microseconds, so a month's offline time is exactly the sum of its days' whatever the
order of addition (floats would differ in the last bit and could flip a rounding).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from oversight.offline import Interval
from oversight.rules import SHANGHAI, month_bounds

ONE_DAY = timedelta(days=1)
MICROSECOND = timedelta(microseconds=1)


def day_start(day: date) -> datetime:
    """Local midnight at the start of ``day``, as an aware UTC datetime."""
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).astimezone(UTC)


def local_day(at: datetime) -> date:
    return at.astimezone(SHANGHAI).date()


def month_days(month: str) -> list[date]:
    start, end = month_bounds(month)
    first, last = local_day(start), local_day(end)
    return [first + i * ONE_DAY for i in range((last - first).days)]


def finished_days(month: str, now: datetime) -> list[date]:
    """The days of ``month`` whose end (the next local midnight) is not after ``now``."""
    today = local_day(now)
    return [day for day in month_days(month) if day < today]


def runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days as [first, after last) ranges, so each run is one range query."""
    out: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if out and out[-1][1] == day:
            out[-1] = (out[-1][0], day + ONE_DAY)
        else:
            out.append((day, day + ONE_DAY))
    return out


def microseconds(start: datetime, end: datetime) -> int:
    return (end - start) // MICROSECOND


def by_day(intervals: Iterable[Interval]) -> dict[date, int]:
    """Microseconds of (disjoint) intervals per local day they fall in."""
    out: dict[date, int] = {}
    for start, end in intervals:
        cursor = start
        while cursor < end:
            day = local_day(cursor)
            cut = min(end, day_start(day + ONE_DAY))
            out[day] = out.get(day, 0) + microseconds(cursor, cut)
            cursor = cut
    return out


def hours_key(opening: Iterable[Interval]) -> str:
    """A short fingerprint of a month's opening intervals: a day rolled up under other office
    hours or another holiday calendar no longer matches and is computed afresh."""
    text = ";".join(f"{a.astimezone(UTC):%Y%m%d%H%M%S%f}-{b.astimezone(UTC):%Y%m%d%H%M%S%f}"
                    for a, b in opening)  # fmt: skip
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]
