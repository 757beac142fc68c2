"""The Chinese working-day calendar, with the admin's loaded days winning over the package.

``chinese-calendar`` knows the State Council's schedule up to the last year it was released
for (2026 in version 1.11.0) and raises for later years. A year the admin has loaded any day
for is known: the loaded days are the holidays and adjusted working days, every other day
follows Monday-Friday. A year nobody knows falls back to plain weekdays with a warning, or
refuses with a clear error, as configured: never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import chinese_calendar

from tongban.errors import TongbanError

FALLBACK_WEEKDAYS = "weekdays"
FALLBACK_ERROR = "error"


class CalendarUnknown(TongbanError):
    code = "calendar_unknown"
    status = 503


@dataclass(frozen=True, slots=True)
class LoadedDay:
    is_workday: bool
    name: str = ""


@dataclass(frozen=True, slots=True)
class DayInfo:
    day: date
    is_workday: bool
    source: str  # "loaded" | "package" | "fallback"
    name: str = ""


def package_knows(year: int) -> bool:
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


@dataclass(frozen=True)
class WorkCalendar:
    loaded: Mapping[date, LoadedDay]
    fallback: str = FALLBACK_WEEKDAYS

    def loaded_years(self) -> frozenset[int]:
        return frozenset(d.year for d in self.loaded)

    def year_known(self, year: int) -> bool:
        return year in self.loaded_years() or package_knows(year)

    def day(self, day: date) -> DayInfo:
        entry = self.loaded.get(day)
        if entry is not None:
            return DayInfo(day, entry.is_workday, "loaded", entry.name)
        if day.year in self.loaded_years():
            return DayInfo(day, day.weekday() < 5, "loaded")
        try:
            workday = chinese_calendar.is_workday(day)
        except NotImplementedError:
            if self.fallback == FALLBACK_ERROR:
                raise CalendarUnknown(
                    f"{day.year} 年的节假日安排尚未导入，无法判断 {day.isoformat()} 是否为工作日",
                    year=day.year,
                ) from None
            return DayInfo(day, day.weekday() < 5, "fallback")
        name = ""
        if not workday:
            _on_holiday, holiday = chinese_calendar.get_holiday_detail(day)
            name = str(getattr(holiday, "value", holiday) or "")
        return DayInfo(day, workday, "package", name)

    def is_workday(self, day: date) -> bool:
        return self.day(day).is_workday

    def warnings(self, today: date) -> list[str]:
        """What an admin must be told: this year or, from November on, next year unknown."""
        out = []
        if not self.year_known(today.year):
            out.append(f"{today.year} 年节假日安排未知，正按周一至周五作为工作日处理，请管理员导入")
        if today.month >= 11 and not self.year_known(today.year + 1):
            out.append(f"{today.year + 1} 年节假日安排尚未导入，请在 1 月 1 日前导入")
        return out
