"""An in-memory picture of the directory, rebuilt from SQL when it changes.

The directory is small (a province has a few hundred agencies and a few thousand windows) and
read on every call request, so lookups are pure functions over this snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from directory.duty import Absence, absent
from directory.model import Account, Agency, Hall, Matter, Window
from directory.office_hours import Period, is_open, next_opening
from directory.workcalendar import WorkCalendar
from tongban.errors import NotFound


@dataclass(frozen=True)
class DirectorySnapshot:
    agencies: Mapping[int, Agency]
    halls: Mapping[int, Hall]
    windows: Mapping[int, Window]
    matters: Mapping[str, Matter]
    # (matter_id, home region code) -> window id
    owners: Mapping[tuple[int, str], int]
    periods: Mapping[int, tuple[Period, ...]]  # by hall id
    staff: Mapping[int, tuple[Account, ...]]  # by window id, enabled staff only
    calendar: WorkCalendar
    accounts: Mapping[int, Account] = field(default_factory=dict)
    _children: dict[int, list[int]] = field(default_factory=dict, repr=False)
    _by_username: dict[str, Account] = field(default_factory=dict, repr=False)
    _matter_by_id: dict[int, Matter] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_username.update({a.username: a for a in self.accounts.values()})
        self._matter_by_id.update({m.id: m for m in self.matters.values()})
        for agency in self.agencies.values():
            if agency.parent_id is not None:
                self._children.setdefault(agency.parent_id, []).append(agency.id)

    # --- agency tree ---
    def agency(self, agency_id: int) -> Agency:
        try:
            return self.agencies[agency_id]
        except KeyError:
            raise NotFound("没有这个机构", code="agency_not_found") from None

    def agency_by_region(self, region_code: str) -> Agency | None:
        for agency in self.agencies.values():
            if agency.region_code == region_code:
                return agency
        return None

    def subtree(self, agency_id: int) -> frozenset[int]:
        """The agency and every agency below it."""
        out, todo = set(), [agency_id]
        while todo:
            current = todo.pop()
            if current in out:
                continue
            out.add(current)
            todo.extend(self._children.get(current, ()))
        return frozenset(out)

    def parent(self, agency_id: int) -> Agency | None:
        parent_id = self.agency(agency_id).parent_id
        return self.agencies.get(parent_id) if parent_id is not None else None

    def account(self, account_id: int) -> Account:
        try:
            return self.accounts[account_id]
        except KeyError:
            raise NotFound("没有这个账号", code="account_not_found") from None

    def account_by_username(self, username: str) -> Account | None:
        return self._by_username.get(username)

    # --- halls and windows ---
    def window(self, window_id: int) -> Window:
        try:
            return self.windows[window_id]
        except KeyError:
            raise NotFound("没有这个窗口", code="window_not_found") from None

    def hall_of(self, window_id: int) -> Hall:
        return self.halls[self.window(window_id).hall_id]

    def agency_of_window(self, window_id: int) -> Agency:
        return self.agencies[self.hall_of(window_id).agency_id]

    def windows_in(self, agency_ids: Iterable[int]) -> list[Window]:
        wanted = set(agency_ids)
        return [w for w in self.windows.values() if self.halls[w.hall_id].agency_id in wanted]

    def matter(self, code: str) -> Matter:
        try:
            return self.matters[code]
        except KeyError:
            raise NotFound(f"没有事项 {code}", code="matter_not_found") from None

    def matter_by_id(self, matter_id: int) -> Matter | None:
        return self._matter_by_id.get(matter_id)

    def home_window(self, matter_id: int, region_code: str) -> Window | None:
        window_id = self.owners.get((matter_id, region_code))
        return self.windows.get(window_id) if window_id is not None else None

    # --- office hours and duty ---
    def window_periods(self, window_id: int) -> tuple[Period, ...]:
        return self.periods.get(self.window(window_id).hall_id, ())

    def window_open(self, window_id: int, at: datetime) -> bool:
        return is_open(self.window_periods(window_id), self.calendar, at)

    def window_next_opening(self, window_id: int, at: datetime) -> datetime | None:
        return next_opening(self.window_periods(window_id), self.calendar, at)

    def on_duty(
        self, window_id: int, at: datetime, absences: Mapping[int, list[Absence]]
    ) -> list[Account]:
        """Staff on duty at the window at ``at``: assigned, open, not marked absent.

        The same rule as ``duty.on_duty`` for each member, with the window's office hours
        (the same for all its staff) evaluated once instead of once per member."""
        if not self.window_open(window_id, at):
            return []
        return [
            account
            for account in self.staff.get(window_id, ())
            if not absent(absences.get(account.id, ()), at)
        ]
