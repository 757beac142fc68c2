"""Office hours of a hall: weekly periods on the working-day calendar, in Asia/Shanghai.

Pure functions of ``at``: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from directory.workcalendar import WorkCalendar
from tongban.errors import InvalidInput

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY_KINDS = ("workday", "restday", "everyday")


@dataclass(frozen=True, slots=True)
class Period:
    """``days`` is "workday" (adjusted weekend working days included), "restday" or
    "everyday"; opens and closes are minutes after local midnight (closes may be 1440)."""

    days: str
    opens: int
    closes: int

    @classmethod
    def parse(cls, days: str, opens: str, closes: str) -> Period:
        if days not in DAY_KINDS:
            raise InvalidInput(f"days must be one of {', '.join(DAY_KINDS)}", code="bad_period")
        start, end = _minutes(opens), _minutes(closes)
        if not 0 <= start < end <= 24 * 60:
            raise InvalidInput("a period must open before it closes", code="bad_period")
        return cls(days, start, end)

    def applies(self, workday: bool) -> bool:
        return self.days == "everyday" or (self.days == "workday") == workday

    def label(self) -> str:
        return f"{_hhmm(self.opens)}-{_hhmm(self.closes)}"


def _minutes(text: str) -> int:
    try:
        hours, minutes = text.split(":")
        value = int(hours) * 60 + int(minutes)
    except ValueError as err:
        raise InvalidInput(f"not a time of day: {text!r}", code="bad_period") from err
    if not 0 <= int(minutes) < 60:
        raise InvalidInput(f"not a time of day: {text!r}", code="bad_period")
    return value


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _local_day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), SHANGHAI)


def intervals_on(
    periods: Iterable[Period], calendar: WorkCalendar, day: date
) -> list[tuple[datetime, datetime]]:
    """The opening intervals of one local date, sorted and merged, as aware datetimes."""
    workday = calendar.is_workday(day)
    spans = sorted((p.opens, p.closes) for p in periods if p.applies(workday))
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    base = _local_day_start(day)
    return [(base + timedelta(minutes=s), base + timedelta(minutes=e)) for s, e in merged]


def is_open(periods: Sequence[Period], calendar: WorkCalendar, at: datetime) -> bool:
    local = at.astimezone(SHANGHAI)
    return any(start <= local < end for start, end in intervals_on(periods, calendar, local.date()))


def next_opening(
    periods: Sequence[Period], calendar: WorkCalendar, at: datetime, horizon_days: int = 40
) -> datetime | None:
    """When the hall next opens after ``at`` (``at`` itself if open); None if not within
    the horizon (a hall with no periods, or a very long holiday)."""
    local = at.astimezone(SHANGHAI)
    for offset in range(horizon_days + 1):
        day = local.date() + timedelta(days=offset)
        for start, end in intervals_on(periods, calendar, day):
            if end > local:
                return max(start, local)
    return None


def open_intervals(
    periods: Sequence[Period], calendar: WorkCalendar, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Every opening interval overlapping [start, end), clipped to it (for offline minutes)."""
    out: list[tuple[datetime, datetime]] = []
    day = start.astimezone(SHANGHAI).date() - timedelta(days=1)
    last = end.astimezone(SHANGHAI).date()
    while day <= last:
        for a, b in intervals_on(periods, calendar, day):
            lo, hi = max(a, start), min(b, end)
            if lo < hi:
                out.append((lo, hi))
        day += timedelta(days=1)
    return out
