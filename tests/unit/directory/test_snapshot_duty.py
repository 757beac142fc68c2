"""The snapshot's on-duty list applies the pure rule of ``duty.on_duty`` to each member
(it evaluates the window's office hours once per request, not once per member)."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from directory.duty import Absence, on_duty
from directory.model import Account, Agency, Hall, Window
from directory.office_hours import Period
from directory.snapshot import DirectorySnapshot
from directory.workcalendar import WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
HALL = (Period.parse("workday", "09:00", "12:00"), Period.parse("workday", "13:00", "17:00"))
CAL = WorkCalendar({})


def _staff(i: int) -> Account:
    return Account(i, f"s{i}", f"S{i}", "staff", 1, "", "", False, (7,))


def _snapshot(staff: tuple[Account, ...]) -> DirectorySnapshot:
    return DirectorySnapshot(
        agencies={1: Agency(1, "410727", "A", "county", None)},
        halls={3: Hall(3, 1, "H")},
        windows={7: Window(7, 3, "W7", "W", "home")},
        matters={},
        owners={},
        periods={3: HALL},
        staff={7: staff},
        calendar=CAL,
        accounts={a.id: a for a in staff},
    )


def test_on_duty_list_is_the_pure_rule_for_each_member_at_every_quarter_hour() -> None:
    staff = tuple(_staff(i) for i in range(1, 5))
    snap = _snapshot(staff)
    start = datetime(2026, 9, 30, 0, 0, tzinfo=SH)  # a working day, then the National Day
    absences = {
        2: [Absence(start + timedelta(hours=10), start + timedelta(hours=14))],
        3: [Absence(start, start + timedelta(days=3))],
    }
    for step in range(0, 2 * 24 * 4):
        at = start + timedelta(minutes=15 * step)
        expected = [
            a
            for a in staff
            if on_duty(
                assigned=True,
                periods=HALL,
                calendar=CAL,
                absences=absences.get(a.id, []),
                at=at,
            )
        ]
        assert snap.on_duty(7, at, absences) == expected, at
    assert [a.id for a in snap.on_duty(7, start + timedelta(hours=11), absences)] == [1, 4]
    assert snap.on_duty(7, start + timedelta(days=1, hours=11), absences) == []  # holiday
