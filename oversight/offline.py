"""R2's "time offline during office hours", as interval arithmetic.

Pure: the caller supplies the opening intervals (``directory.office_hours.open_intervals``),
the intervals the staff member was online or busy, and the intervals a supervisor marked
them absent (leave, training): time absent is not time offline, since they were not on duty.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

Interval = tuple[datetime, datetime]
ONLINE_STATUSES = ("online", "busy")


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping, empty ones dropped."""
    out: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def subtract(base: Iterable[Interval], cut: Iterable[Interval]) -> list[Interval]:
    """``base`` minus ``cut``, both merged first; one pass over both sorted lists."""
    cuts = merge(cut)
    out: list[Interval] = []
    first = 0  # cuts before this one end before every remaining base interval
    for start, end in merge(base):
        while first < len(cuts) and cuts[first][1] <= start:
            first += 1
        cursor = start
        index = first
        while index < len(cuts) and cuts[index][0] < end:
            c_start, c_end = cuts[index]
            if c_start > cursor:
                out.append((cursor, c_start))
            cursor = max(cursor, c_end)
            if cursor >= end:
                break
            index += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def total_seconds(intervals: Iterable[Interval]) -> float:
    return sum((end - start).total_seconds() for start, end in merge(intervals))


def offline_intervals(
    open_intervals: Iterable[Interval],
    online: Iterable[Interval],
    absent: Iterable[Interval] = (),
) -> list[Interval]:
    """The time inside office hours, outside any absence, with no online or busy status."""
    return subtract(subtract(open_intervals, absent), online)


def offline_seconds(
    open_intervals: Iterable[Interval],
    online: Iterable[Interval],
    absent: Iterable[Interval] = (),
) -> float:
    return total_seconds(offline_intervals(open_intervals, online, absent))
