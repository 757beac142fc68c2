"""R2: office hours on the Chinese working-day calendar, across edge times (no event loop)."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from directory.duty import Absence, on_duty
from directory.office_hours import Period, intervals_on, is_open, next_opening, open_intervals
from directory.workcalendar import CalendarUnknown, LoadedDay, WorkCalendar
from tongban.errors import InvalidInput

SH = ZoneInfo("Asia/Shanghai")
HALL = [Period.parse("workday", "09:00", "12:00"), Period.parse("workday", "13:00", "17:00")]
CAL = WorkCalendar({})


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)  # type: ignore[misc]


def test_ordinary_workday_morning_lunch_afternoon() -> None:
    assert not is_open(HALL, CAL, sh(2026, 11, 27, 8, 59))
    assert is_open(HALL, CAL, sh(2026, 11, 27, 9, 0))
    assert is_open(HALL, CAL, sh(2026, 11, 27, 11, 59))
    assert not is_open(HALL, CAL, sh(2026, 11, 27, 12, 0)), "lunch break"
    assert not is_open(HALL, CAL, sh(2026, 11, 27, 12, 59))
    assert is_open(HALL, CAL, sh(2026, 11, 27, 13, 0))
    assert not is_open(HALL, CAL, sh(2026, 11, 27, 17, 0))


def test_statutory_holiday_on_a_weekday_is_closed() -> None:
    assert date(2026, 10, 1).weekday() == 3
    assert not is_open(HALL, CAL, sh(2026, 10, 1, 10, 0))
    assert CAL.day(date(2026, 10, 1)).name == "National Day"


def test_adjusted_working_weekend_is_open() -> None:
    assert date(2026, 10, 10).weekday() == 5  # a Saturday made a working day
    assert is_open(HALL, CAL, sh(2026, 10, 10, 10, 0))
    assert not is_open(HALL, CAL, sh(2026, 10, 11, 10, 0)), "the Sunday after stays a rest day"


def test_times_are_judged_in_shanghai_even_when_given_in_utc() -> None:
    # 01:30 UTC is 09:30 in Shanghai on a Friday
    assert is_open(HALL, CAL, datetime(2026, 11, 27, 1, 30, tzinfo=ZoneInfo("UTC")))
    # 16:30 UTC Thursday is 00:30 Friday in Shanghai: closed
    assert not is_open(HALL, CAL, datetime(2026, 11, 26, 16, 30, tzinfo=ZoneInfo("UTC")))


def test_around_the_clock_period_covers_midnight_and_holidays() -> None:
    always = [Period.parse("everyday", "00:00", "24:00")]
    assert is_open(always, CAL, sh(2026, 10, 1, 0, 0))
    assert is_open(always, CAL, sh(2026, 12, 31, 23, 59, 59))
    assert is_open(always, CAL, sh(2027, 1, 1, 0, 0))


def test_next_opening_over_lunch_night_weekend_and_month_end() -> None:
    assert next_opening(HALL, CAL, sh(2026, 11, 27, 12, 30)) == sh(2026, 11, 27, 13, 0)
    assert next_opening(HALL, CAL, sh(2026, 11, 27, 10, 0)) == sh(2026, 11, 27, 10, 0)
    # Friday evening, 30 November is a Monday: the month turns over the weekend
    assert next_opening(HALL, CAL, sh(2026, 11, 27, 17, 0)) == sh(2026, 11, 30, 9, 0)
    # National Day week: closed 1-7 October, the next opening is Thursday 8 October
    assert next_opening(HALL, CAL, sh(2026, 9, 30, 18, 0)) == sh(2026, 10, 8, 9, 0)
    assert next_opening([], CAL, sh(2026, 9, 30, 18, 0)) is None


def test_year_the_package_does_not_know_falls_back_to_weekdays() -> None:
    # chinese-calendar 1.11.0 knows 2004-2026 only
    day = CAL.day(date(2027, 1, 4))
    assert day.source == "fallback" and day.is_workday
    assert is_open(HALL, CAL, sh(2027, 1, 4, 9, 30))
    assert not is_open(HALL, CAL, sh(2027, 1, 2, 9, 30)), "a Saturday"
    assert "2027" in CAL.warnings(date(2026, 11, 28))[0]
    assert CAL.warnings(date(2026, 10, 28)) == [], "no warning before November"


def test_unknown_year_with_error_policy_gives_a_clear_error() -> None:
    strict = WorkCalendar({}, fallback="error")
    with pytest.raises(CalendarUnknown) as err:
        is_open(HALL, strict, sh(2027, 1, 4, 10, 0))
    assert err.value.code == "calendar_unknown" and "2027" in err.value.message


def test_loaded_schedule_for_next_year_wins() -> None:
    loaded = {
        date(2027, 1, 1): LoadedDay(False, "元旦"),
        date(2027, 1, 9): LoadedDay(True, "调休上班"),  # a Saturday
    }
    cal = WorkCalendar(loaded, fallback="error")
    assert not is_open(HALL, cal, sh(2027, 1, 1, 10, 0))
    assert is_open(HALL, cal, sh(2027, 1, 9, 10, 0))
    assert is_open(HALL, cal, sh(2027, 1, 4, 10, 0)), "unlisted weekday of a loaded year"
    assert not is_open(HALL, cal, sh(2027, 1, 10, 10, 0)), "unlisted Sunday"
    assert cal.warnings(date(2026, 12, 1)) == []
    # a loaded correction also wins over the package
    fixed = WorkCalendar({date(2026, 10, 1): LoadedDay(True, "test")})
    assert is_open(HALL, fixed, sh(2026, 10, 1, 10, 0))


def test_open_intervals_clip_to_the_window() -> None:
    spans = open_intervals(HALL, CAL, sh(2026, 11, 27, 10, 0), sh(2026, 11, 30, 10, 0))
    total = sum((b - a for a, b in spans), timedelta())
    # Fri 10-12 (2h) + 13-17 (4h) + Mon 9-10 (1h)
    assert total == timedelta(hours=7)
    assert intervals_on(HALL, CAL, date(2026, 11, 28)) == []


@pytest.mark.parametrize(
    ("days", "opens", "closes"),
    [
        ("sometimes", "09:00", "12:00"),
        ("workday", "12:00", "09:00"),
        ("workday", "9", "10:00"),
        ("workday", "09:75", "10:00"),
        ("workday", "00:00", "24:01"),
    ],
)
def test_bad_periods_are_refused(days: str, opens: str, closes: str) -> None:
    with pytest.raises(InvalidInput):
        Period.parse(days, opens, closes)


def test_on_duty_needs_assignment_office_hours_and_no_absence() -> None:
    at = sh(2026, 11, 27, 10, 0)
    leave = [Absence(sh(2026, 11, 27, 0, 0), sh(2026, 11, 28, 0, 0))]
    assert on_duty(assigned=True, periods=HALL, calendar=CAL, absences=[], at=at)
    assert not on_duty(assigned=False, periods=HALL, calendar=CAL, absences=[], at=at)
    assert not on_duty(assigned=True, periods=HALL, calendar=CAL, absences=leave, at=at)
    assert not on_duty(
        assigned=True, periods=HALL, calendar=CAL, absences=[], at=sh(2026, 11, 28, 10)
    )
