"""The R5 rules as pure functions: which month a miss belongs to, how many confirmed misses a
staff member has, and what that means for escalation.

No clock, no I/O: callers pass ``now`` and the stored states, so the rules are tested across
month ends and midnight in Asia/Shanghai without an event loop or a database.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from tongban.errors import InvalidInput

SHANGHAI = ZoneInfo("Asia/Shanghai")
VERDICTS = ("confirmed", "excused")
STATUSES = ("pending", *VERDICTS)
DEFAULT_LIMIT = 3
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


# --- months --------------------------------------------------------------------------------


def month_of(at: datetime) -> str:
    """The calendar month of a moment as "YYYY-MM", in Asia/Shanghai: R5 counts per month of
    the hall's local calendar, so 2026-11-30T16:30Z (00:30 on 1 December there) is December."""
    if at.tzinfo is None:
        raise ValueError("naive datetime; the month of a moment needs its time zone")
    return f"{at.astimezone(SHANGHAI):%Y-%m}"


def parse_month(text: str | None) -> str:
    """A "YYYY-MM" from a request, or ``InvalidInput`` coded ``invalid_month``."""
    match = _MONTH.match(text or "")
    if match is None or not 2000 <= int(match.group(1)) <= 2100:
        raise InvalidInput("月份格式应为 YYYY-MM", code="invalid_month")
    return match.group(0)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a local month as aware UTC datetimes, for range queries on UTC columns."""
    year, mon = (int(part) for part in parse_month(month).split("-"))
    start = datetime(year, mon, 1, tzinfo=SHANGHAI)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=SHANGHAI)
    return start.astimezone(UTC), end.astimezone(UTC)


# --- counting -------------------------------------------------------------------------------


def confirmed_count(statuses: Iterable[str]) -> int:
    """Only misses a supervisor confirmed count (R5: "once verified to be the staff's fault");
    pending and excused ones do not."""
    return sum(1 for status in statuses if status == "confirmed")


@dataclass(frozen=True, slots=True)
class MissState:
    account_id: int
    month: str
    status: str


def confirmed_by_staff_month(misses: Iterable[MissState]) -> dict[tuple[int, str], int]:
    """Confirmed misses per (staff member, month); months never add up with each other."""
    counts: Counter[tuple[int, str]] = Counter()
    for miss in misses:
        if miss.status == "confirmed":
            counts[(miss.account_id, miss.month)] += 1
    return dict(counts)


class Standing(StrEnum):
    OK = "ok"
    AT_RISK = "at_risk"  # exactly at the limit: one more confirmed miss escalates
    OVER_LIMIT = "over_limit"  # more than the limit: escalated


def standing(confirmed: int, limit: int) -> Standing:
    if confirmed > limit:
        return Standing.OVER_LIMIT
    if confirmed == limit and limit > 0:
        return Standing.AT_RISK
    return Standing.OK


# --- escalation -----------------------------------------------------------------------------


class Action(StrEnum):
    NONE = "none"
    CREATE = "create"
    REACTIVATE = "reactivate"  # a withdrawn escalation whose count went over the limit again
    RECOUNT = "recount"  # still escalated; only the count changed (no new SMS)
    WITHDRAW = "withdraw"


def escalation_action(
    confirmed: int, limit: int, current_state: str | None, current_count: int | None = None
) -> Action:
    """What a recount means for the one escalation a staff member may have in a month.

    ``current_state`` is None (no escalation yet), "active" or "withdrawn". Because the decision
    depends only on the new count and the stored state, re-verification (a verdict changed
    either way) is handled by recounting after the change.
    """
    if confirmed > limit:
        if current_state is None:
            return Action.CREATE
        if current_state == "withdrawn":
            return Action.REACTIVATE
        return Action.RECOUNT if current_count != confirmed else Action.NONE
    if current_state == "active":
        return Action.WITHDRAW
    return Action.NONE


def escalation_target(agency_id: int, parent_id: int | None) -> int:
    """R5 hands a staff member over to the next-level agency: the parent of the staff member's
    agency. The province has no parent, so its own staff are escalated to the province itself
    (its own supervisors), the highest level there is."""
    return parent_id if parent_id is not None else agency_id
