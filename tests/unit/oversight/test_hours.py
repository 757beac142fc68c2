"""The hours of the report's hourly rollup: numbering, runs, and which hours of the current
day are rolled up or read live (oversight/hours.py, oversight/report.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from oversight.days import ONE_DAY, day_start
from oversight.hours import HOUR, hour_of, hour_start, runs
from oversight.report import _live_spans, _today_hours
from oversight.rules import SHANGHAI, month_bounds

OCT_15 = day_start(date(2026, 10, 15))  # 14 October 16:00 UTC


def test_hours_are_whole_utc_hours_and_local_ones() -> None:
    assert hour_of(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert hour_of(datetime(1970, 1, 1, 0, 59, 59, 999999, tzinfo=UTC)) == 0
    assert hour_of(datetime(1970, 1, 1, 1, tzinfo=UTC)) == 1
    at = datetime(2026, 10, 15, 10, 30, tzinfo=SHANGHAI)
    assert hour_start(hour_of(at)) == datetime(2026, 10, 15, 10, tzinfo=SHANGHAI)
    assert hour_of(OCT_15 + ONE_DAY) - hour_of(OCT_15) == 24


def test_runs_of_consecutive_hours() -> None:
    assert runs([]) == []
    assert runs([5, 3, 4, 9, 9, 11, 10]) == [(3, 6), (9, 12)]


def test_the_current_day_but_the_hour_in_progress_is_rolled_up() -> None:
    start, end = month_bounds("2026-10")
    now = OCT_15 + 10 * HOUR + timedelta(minutes=20)
    today = _today_hours(OCT_15, end, now)
    first = hour_of(OCT_15)
    assert today == [h for h in range(first, first + 24) if h != first + 10]
    # at the first instant of an hour, that hour is in progress
    assert hour_of(OCT_15 + 10 * HOUR) not in _today_hours(OCT_15, end, OCT_15 + 10 * HOUR)
    # a finished month, or one not begun: no hours
    assert _today_hours(end, end, end + HOUR) == []
    assert _today_hours(start, end, start - HOUR) == []
    # the last day of a month ends with it
    last = end - ONE_DAY
    assert max(_today_hours(last, end, last + HOUR)) == hour_of(end) - 1


def test_live_spans_are_the_hours_not_rolled_up_and_the_days_after() -> None:
    _start, end = month_bounds("2026-10")
    first = hour_of(OCT_15)
    rolled = set(range(first, first + 24)) - {first + 10, first + 13}
    assert _live_spans(OCT_15, end, True, rolled) == [
        (OCT_15 + 10 * HOUR, OCT_15 + 11 * HOUR, True),
        (OCT_15 + 13 * HOUR, OCT_15 + 14 * HOUR, True),
        (OCT_15 + ONE_DAY, end, False),
    ]
    last = end - ONE_DAY
    assert _live_spans(last, end, True, set()) == [(last, end, True)]
    assert _live_spans(OCT_15, end, False, set()) == [(OCT_15, end, False)]
    assert _live_spans(end, end, True, set()) == []
