"""When a recording may be deleted (R7: kept 6 months, then deleted, unless on legal hold).

Pure rules: no I/O, ``now`` is an argument. Months are calendar months counted on the
Asia/Shanghai calendar, the one the regulation and the auditors use: a call at 00:30 on
1 March in Shanghai is still 28/29 February in UTC, and its six months end on 1 September.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_RETENTION_MONTHS = 6


def _shanghai() -> tzinfo:
    try:
        return ZoneInfo("Asia/Shanghai")
    except (
        ZoneInfoNotFoundError
    ):  # no tz database installed: China has kept UTC+8, no DST, since 1991
        return timezone(timedelta(hours=8), "Asia/Shanghai")


SHANGHAI = _shanghai()


def add_months(local: datetime, months: int) -> datetime:
    """Same wall-clock time ``months`` later; a day the month lacks becomes its last day."""
    index = local.month - 1 + months
    year, month = local.year + index // 12, index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day)


def expires_at(started_at: datetime, months: int = DEFAULT_RETENTION_MONTHS) -> datetime:
    """Start + ``months`` calendar months in Asia/Shanghai (31 Aug + 6 -> end of February).

    Returned in Asia/Shanghai; compare it with any aware datetime.
    """
    if started_at.tzinfo is None or started_at.utcoffset() is None:
        raise ValueError("started_at must be timezone-aware")
    if months < 0:
        raise ValueError("months must not be negative")
    return add_months(started_at.astimezone(SHANGHAI), months)


def is_purgeable(expires_at: datetime, legal_hold: bool, now: datetime) -> bool:
    """A recording may be deleted once it has expired, never while under legal hold."""
    if now.tzinfo is None or expires_at.tzinfo is None:
        raise ValueError("now and expires_at must be timezone-aware")
    return not legal_hold and now >= expires_at
