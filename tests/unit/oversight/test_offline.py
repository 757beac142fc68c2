"""R2: minutes offline during office hours, with absences not counted as offline."""

from __future__ import annotations

from datetime import UTC, datetime

from directory.office_hours import Period, open_intervals
from directory.workcalendar import WorkCalendar
from oversight.offline import merge, offline_seconds, subtract


def t(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, minute, tzinfo=UTC)


def test_merge_and_subtract() -> None:
    assert merge(
        [(t(1, 3), t(1, 5)), (t(1, 1), t(1, 2)), (t(1, 4), t(1, 6)), (t(1, 7), t(1, 7))]
    ) == [
        (t(1, 1), t(1, 2)),
        (t(1, 3), t(1, 6)),
    ]
    assert subtract(
        [(t(1, 1), t(1, 9))], [(t(1, 0), t(1, 2)), (t(1, 4), t(1, 5)), (t(1, 8), t(1, 10))]
    ) == [
        (t(1, 2), t(1, 4)),
        (t(1, 5), t(1, 8)),
    ]


def test_online_and_busy_inside_office_hours_leave_the_rest_offline() -> None:
    opening = [(t(1, 1), t(1, 4)), (t(1, 5), t(1, 9))]  # 7 h open
    online = [(t(1, 0), t(1, 2)), (t(1, 3, 30), t(1, 6))]  # covers 1 h + 0.5 h + 1 h
    assert offline_seconds(opening, online) == 4.5 * 3600


def test_absence_is_not_offline() -> None:
    opening = [(t(1, 1), t(1, 9))]
    assert offline_seconds(opening, [], absent=[(t(1, 1), t(1, 5))]) == 4 * 3600


def test_with_real_office_hours_on_a_holiday_week() -> None:
    """1-7 October 2026 is the National Day holiday; 8-10 October are working days, Saturday
    the 10th an adjusted one. Hours 09:00-12:00 and 13:00-17:00 local."""
    periods = (Period.parse("workday", "09:00", "12:00"), Period.parse("workday", "13:00", "17:00"))
    cal = WorkCalendar({}, fallback="weekdays")
    start = datetime(2026, 9, 30, 16, tzinfo=UTC)  # 1 October 00:00 local
    end = datetime(2026, 10, 10, 16, tzinfo=UTC)  # 11 October 00:00 local
    opening = open_intervals(periods, cal, start, end)
    assert sorted({a.day for a, _ in opening}) == [8, 9, 10]
    assert offline_seconds(opening, []) == 3 * 7 * 3600
    # online 09:00-17:00 local every day: only lunch is outside, and lunch is closed anyway
    online = [(a.replace(hour=9), a.replace(hour=17)) for a, _ in opening]
    assert offline_seconds(opening, online) == 0
