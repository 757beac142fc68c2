"""R2, R12 (issue 7): the Asia/Shanghai days of the report's rollup, pure."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from oversight.days import (
    by_day,
    day_start,
    finished_days,
    hours_key,
    month_days,
    runs,
)

SHANGHAI_MIDNIGHT_OCT_1 = datetime(2026, 9, 30, 16, tzinfo=UTC)


def test_a_local_day_starts_at_16_00_utc_the_day_before() -> None:
    assert day_start(date(2026, 10, 1)) == SHANGHAI_MIDNIGHT_OCT_1
    days = month_days("2026-10")
    assert (days[0], days[-1], len(days)) == (date(2026, 10, 1), date(2026, 10, 31), 31)
    assert len(month_days("2028-02")) == 29


def test_finished_days_are_those_whose_local_midnight_has_passed() -> None:
    oct_15_0001 = SHANGHAI_MIDNIGHT_OCT_1 + timedelta(days=14, minutes=1)
    assert finished_days("2026-10", oct_15_0001)[-1] == date(2026, 10, 14)
    assert len(finished_days("2026-10", oct_15_0001 - timedelta(minutes=2))) == 13
    # 2026-10-31T16:00Z is 1 November there: October is over
    assert len(finished_days("2026-10", datetime(2026, 10, 31, 16, tzinfo=UTC))) == 31
    assert len(finished_days("2026-10", datetime(2026, 10, 31, 15, 59, tzinfo=UTC))) == 30
    assert finished_days("2026-11", SHANGHAI_MIDNIGHT_OCT_1) == []


def test_runs_of_consecutive_days() -> None:
    d = [date(2026, 10, n) for n in (5, 1, 2, 3, 7, 8)]
    assert runs(d) == [
        (date(2026, 10, 1), date(2026, 10, 4)),
        (date(2026, 10, 5), date(2026, 10, 6)),
        (date(2026, 10, 7), date(2026, 10, 9)),
    ]
    assert runs([]) == []


def test_time_is_split_at_local_midnight_in_whole_microseconds() -> None:
    late = SHANGHAI_MIDNIGHT_OCT_1 + timedelta(days=1) - timedelta(hours=1, microseconds=1)
    split = by_day([(late, late + timedelta(hours=2)), (late + timedelta(days=3), late)])
    assert split == {
        date(2026, 10, 1): 3_600_000_001,
        date(2026, 10, 2): 3_599_999_999,
    }, "an empty interval counts nothing"
    long = by_day([(SHANGHAI_MIDNIGHT_OCT_1, SHANGHAI_MIDNIGHT_OCT_1 + timedelta(days=2))])
    assert long == {date(2026, 10, 1): 86_400_000_000, date(2026, 10, 2): 86_400_000_000}


def test_hours_key_changes_with_the_opening_intervals() -> None:
    a = [(SHANGHAI_MIDNIGHT_OCT_1, SHANGHAI_MIDNIGHT_OCT_1 + timedelta(hours=8))]
    b = [(SHANGHAI_MIDNIGHT_OCT_1, SHANGHAI_MIDNIGHT_OCT_1 + timedelta(hours=9))]
    assert hours_key(a) == hours_key(list(a)) != hours_key(b)
    assert len(hours_key([])) == 16
