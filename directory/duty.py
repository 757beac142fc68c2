"""Who is on duty: assigned to the window, inside its office hours, not marked absent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from directory.office_hours import Period, is_open
from directory.workcalendar import WorkCalendar


@dataclass(frozen=True, slots=True)
class Absence:
    starts_at: datetime
    ends_at: datetime


def absent(absences: Iterable[Absence], at: datetime) -> bool:
    return any(a.starts_at <= at < a.ends_at for a in absences)


def on_duty(
    *,
    assigned: bool,
    periods: Sequence[Period],
    calendar: WorkCalendar,
    absences: Iterable[Absence],
    at: datetime,
) -> bool:
    return assigned and is_open(periods, calendar, at) and not absent(absences, at)
