"""SQL access for the directory: loading the snapshot, accounts and their changes."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.duty import Absence
from directory.model import Account, Agency, Hall, Matter, Window
from directory.office_hours import Period
from directory.snapshot import DirectorySnapshot
from directory.workcalendar import LoadedDay, WorkCalendar
from storage import schema as s
from storage import sqlfast


async def load_snapshot(conn: AsyncConnection, *, calendar_fallback: str) -> DirectorySnapshot:
    agencies = {
        r.id: Agency(r.id, r.region_code, r.name, r.level, r.parent_id)
        for r in await conn.execute(sa.select(s.agencies))
    }
    halls = {r.id: Hall(r.id, r.agency_id, r.name) for r in await conn.execute(sa.select(s.halls))}
    windows = {
        r.id: Window(r.id, r.hall_id, r.code, r.name, r.kind)
        for r in await conn.execute(sa.select(s.windows))
    }
    matters = {
        r.code: Matter(r.id, r.code, r.name, r.department)
        for r in await conn.execute(sa.select(s.matters))
    }
    owners = {
        (r.matter_id, r.region_code): r.window_id
        for r in await conn.execute(sa.select(s.window_matters))
    }
    periods: dict[int, list[Period]] = defaultdict(list)
    for r in await conn.execute(sa.select(s.office_hours).order_by(s.office_hours.c.id)):
        periods[r.hall_id].append(Period.parse(r.days, r.opens, r.closes))
    loaded = {
        r.day: LoadedDay(r.is_workday, r.name)
        for r in await conn.execute(sa.select(s.calendar_days))
    }
    staff: dict[int, list[Account]] = defaultdict(list)
    everyone = await list_accounts(conn)
    for account in everyone:
        if account.disabled or account.role != "staff":
            continue
        for window_id in account.window_ids:
            staff[window_id].append(account)
    return DirectorySnapshot(
        agencies=agencies,
        halls=halls,
        windows=windows,
        matters=matters,
        owners=owners,
        periods={k: tuple(v) for k, v in periods.items()},
        staff={k: tuple(v) for k, v in staff.items()},
        calendar=WorkCalendar(loaded, fallback=calendar_fallback),
        accounts={a.id: a for a in everyone},
    )


def _account(row: Any, window_ids: tuple[int, ...]) -> Account:
    return Account(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=row.role,
        agency_id=row.agency_id,
        mobile=row.mobile,
        department=row.department,
        disabled=row.disabled,
        window_ids=window_ids,
    )


async def _window_ids(conn: AsyncConnection, account_ids: list[int]) -> dict[int, tuple[int, ...]]:
    out: dict[int, list[int]] = defaultdict(list)
    if account_ids:
        rows = await conn.execute(
            sa.select(s.account_windows).where(s.account_windows.c.account_id.in_(account_ids))
        )
        for r in rows:
            out[r.account_id].append(r.window_id)
    return {k: tuple(sorted(v)) for k, v in out.items()}


async def list_accounts(conn: AsyncConnection, *, where: Any = None) -> list[Account]:
    query = sa.select(s.accounts).order_by(s.accounts.c.username)
    if where is not None:
        query = query.where(where)
    rows = list(await conn.execute(query))
    windows = await _window_ids(conn, [r.id for r in rows])
    return [_account(r, windows.get(r.id, ())) for r in rows]


# one account and its windows, for every session check (storage/sqlfast.py: on the
# server's SQLite, read on the loop's own connection instead of four trips to aiosqlite's
# thread per statement)
ACCOUNT_BY_ID = sa.select(s.accounts).where(s.accounts.c.id == sa.bindparam("account_id"))
WINDOWS_OF = (
    sa.select(s.account_windows.c.window_id)
    .where(s.account_windows.c.account_id == sa.bindparam("account_id"))
    .order_by(s.account_windows.c.window_id)
)


async def account_by_id(conn: AsyncConnection, account_id: int) -> Account | None:
    found = await sqlfast.fetch(conn, ACCOUNT_BY_ID, {"account_id": account_id})
    if not found:
        return None
    windows = await sqlfast.fetch(conn, WINDOWS_OF, {"account_id": account_id})
    return _account(found[0], tuple(r.window_id for r in windows))


async def account_by_username(conn: AsyncConnection, username: str) -> Account | None:
    found = await list_accounts(conn, where=s.accounts.c.username == username)
    return found[0] if found else None


async def absences_at(
    conn: AsyncConnection, account_ids: list[int], at: datetime
) -> dict[int, list[Absence]]:
    out: dict[int, list[Absence]] = defaultdict(list)
    if not account_ids:
        return out
    rows = await conn.execute(
        sa.select(s.absences).where(
            s.absences.c.account_id.in_(account_ids),
            s.absences.c.starts_at <= at,
            s.absences.c.ends_at > at,
        )
    )
    for r in rows:
        out[r.account_id].append(Absence(r.starts_at, r.ends_at))
    return out


async def load_calendar_days(conn: AsyncConnection, days: dict[date, tuple[bool, str]]) -> None:
    """Upsert an admin-supplied schedule (a year's holidays and adjusted working days)."""
    for day, (is_workday, name) in days.items():
        await conn.execute(sa.delete(s.calendar_days).where(s.calendar_days.c.day == day))
        await conn.execute(
            sa.insert(s.calendar_days).values(day=day, is_workday=is_workday, name=name[:60])
        )
