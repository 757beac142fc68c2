"""R5 rules: the month of a miss in Asia/Shanghai, counting confirmed misses, and what a
(re)count means for the one escalation per staff member and month."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from oversight.rules import (
    Action,
    MissState,
    Standing,
    confirmed_by_staff_month,
    confirmed_count,
    escalation_action,
    escalation_target,
    month_bounds,
    month_of,
    parse_month,
    standing,
)
from tongban.errors import InvalidInput


@pytest.mark.parametrize(
    ("moment", "month"),
    [
        (datetime(2026, 11, 30, 16, 30, tzinfo=UTC), "2026-12"),  # 00:30 on 1 December there
        (datetime(2026, 11, 30, 15, 59, 59, tzinfo=UTC), "2026-11"),  # 23:59:59 on 30 November
        (datetime(2026, 11, 30, 16, 0, tzinfo=UTC), "2026-12"),  # local midnight exactly
        (datetime(2026, 12, 31, 16, 0, tzinfo=UTC), "2027-01"),  # year end
        (datetime(2028, 2, 29, 15, 59, tzinfo=UTC), "2028-02"),  # leap day, last local minute
        (datetime(2026, 3, 1, 0, 0, tzinfo=timezone(timedelta(hours=-5))), "2026-03"),
    ],
)
def test_month_of_follows_the_local_calendar(moment: datetime, month: str) -> None:
    assert month_of(moment) == month


def test_month_of_refuses_a_naive_moment() -> None:
    with pytest.raises(ValueError):
        month_of(datetime(2026, 11, 30, 12))


def test_month_bounds_are_local_midnights_in_utc() -> None:
    start, end = month_bounds("2026-12")
    assert start == datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert end == datetime(2026, 12, 31, 16, tzinfo=UTC)
    assert month_of(start) == "2026-12" and month_of(end - timedelta(microseconds=1)) == "2026-12"
    assert month_of(end) == "2027-01"


@pytest.mark.parametrize("bad", [None, "", "2026-13", "2026-00", "2026-1", "26-11", "2026-11-01",
                                 "1999-12", "abcd-ef"])  # fmt: skip
def test_a_bad_month_is_invalid_month(bad: str | None) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_month(bad)
    assert err.value.code == "invalid_month"


def test_only_confirmed_misses_count() -> None:
    assert confirmed_count(["pending", "confirmed", "excused", "confirmed"]) == 2
    assert confirmed_count([]) == 0


def test_months_never_add_up() -> None:
    misses = [
        MissState(1, "2026-11", "confirmed"),
        MissState(1, "2026-11", "confirmed"),
        MissState(1, "2026-12", "confirmed"),
        MissState(1, "2026-12", "excused"),
        MissState(2, "2026-11", "pending"),
    ]
    assert confirmed_by_staff_month(misses) == {(1, "2026-11"): 2, (1, "2026-12"): 1}


@pytest.mark.parametrize(
    ("count", "limit", "expected"),
    [(0, 3, Standing.OK), (2, 3, Standing.OK), (3, 3, Standing.AT_RISK),
     (4, 3, Standing.OVER_LIMIT), (0, 0, Standing.OK), (1, 0, Standing.OVER_LIMIT)],
)  # fmt: skip
def test_standing(count: int, limit: int, expected: Standing) -> None:
    assert standing(count, limit) is expected


def test_more_than_the_limit_escalates_exactly_at_the_limit_does_not() -> None:
    assert escalation_action(3, 3, None) is Action.NONE
    assert escalation_action(4, 3, None) is Action.CREATE


def test_one_escalation_per_month_later_confirmations_only_recount() -> None:
    assert escalation_action(5, 3, "active", 4) is Action.RECOUNT
    assert escalation_action(5, 3, "active", 5) is Action.NONE


def test_an_excusal_down_to_the_limit_withdraws() -> None:
    assert escalation_action(3, 3, "active", 4) is Action.WITHDRAW
    assert escalation_action(4, 3, "active", 5) is Action.RECOUNT, "still over: stays"
    assert escalation_action(2, 3, "withdrawn", 4) is Action.NONE


def test_reverification_replays_through_the_same_rule() -> None:
    """Verdicts changed back and forth: the decision depends only on the new count."""
    limit, state, count = 3, None, None
    statuses = {1: "confirmed", 2: "confirmed", 3: "confirmed", 4: "pending"}
    history = []
    for miss_id, verdict in [(4, "confirmed"), (2, "excused"), (2, "confirmed"), (4, "excused")]:
        statuses[miss_id] = verdict
        confirmed = confirmed_count(statuses.values())
        action = escalation_action(confirmed, limit, state, count)
        history.append(action)
        if action in (Action.CREATE, Action.REACTIVATE, Action.RECOUNT):
            state, count = "active", confirmed
        elif action is Action.WITHDRAW:
            state = "withdrawn"
    assert history == [Action.CREATE, Action.WITHDRAW, Action.REACTIVATE, Action.WITHDRAW]


def test_escalation_goes_to_the_parent_and_the_province_to_itself() -> None:
    assert escalation_target(410727, 410700) == 410700
    assert escalation_target(410000, None) == 410000
