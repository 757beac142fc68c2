"""R7: recordings are kept 6 calendar months (Asia/Shanghai), then purged unless on hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from recorder.retention import SHANGHAI, expires_at, is_purgeable


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (sh(2026, 3, 2, 9, 30), 6, sh(2026, 9, 2, 9, 30)),
        (sh(2026, 8, 31, 15, 0), 6, sh(2027, 2, 28, 15, 0)),  # no 31 Feb: end of February
        (sh(2027, 8, 31, 15, 0), 6, sh(2028, 2, 29, 15, 0)),  # leap year
        (sh(2028, 2, 29, 8, 0), 6, sh(2028, 8, 29, 8, 0)),  # from a leap day
        (sh(2028, 2, 29, 8, 0), 12, sh(2029, 2, 28, 8, 0)),
        (sh(2026, 12, 31, 23, 59), 2, sh(2027, 2, 28, 23, 59)),  # across the year
        (sh(2026, 7, 15, 10, 0), 0, sh(2026, 7, 15, 10, 0)),
        (sh(2026, 5, 31, 0, 0), 1, sh(2026, 6, 30, 0, 0)),
    ],
)
def test_calendar_months_in_shanghai(start: datetime, months: int, expected: datetime) -> None:
    assert expires_at(start, months) == expected


def test_months_count_on_the_shanghai_calendar_not_utc() -> None:
    # 00:30 on 1 March in Shanghai is 16:30 on 28 February in UTC.
    start = datetime(2026, 2, 28, 16, 30, tzinfo=UTC)
    assert expires_at(start, 6) == sh(2026, 9, 1, 0, 30)
    # Computed in UTC it would have been 28 August: a day and a half too early.
    assert expires_at(start, 6) > datetime(2026, 8, 28, 16, 30, tzinfo=UTC)


def test_late_evening_utc_is_the_next_day_in_shanghai() -> None:
    start = datetime(2026, 8, 30, 20, 0, tzinfo=UTC)  # 31 Aug 04:00 in Shanghai
    assert expires_at(start, 6) == sh(2027, 2, 28, 4, 0)


def test_result_is_the_same_instant_whatever_the_input_zone() -> None:
    instant = sh(2026, 1, 31, 12, 0)
    other = instant.astimezone(timezone(timedelta(hours=-5)))
    assert expires_at(other, 1) == expires_at(instant, 1) == sh(2026, 2, 28, 12, 0)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        expires_at(datetime(2026, 1, 1), 6)
    with pytest.raises(ValueError):
        is_purgeable(datetime(2026, 1, 1), False, datetime.now(UTC))


def test_purgeable_only_after_expiry_and_without_hold() -> None:
    expiry = expires_at(sh(2026, 3, 2, 9, 30), 6)
    assert not is_purgeable(expiry, False, expiry - timedelta(seconds=1))
    assert is_purgeable(expiry, False, expiry)
    assert is_purgeable(expiry, False, expiry.astimezone(UTC) + timedelta(days=1))
    assert not is_purgeable(expiry, True, expiry + timedelta(days=365))
