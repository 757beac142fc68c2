"""Realistic call, miss and presence rows written straight to the database, so oversight is
tested without driving the signaling layer (which records misses the same way)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from oversight.rules import month_of
from storage import schema as s


@dataclass(frozen=True)
class Demo:
    """Ids of the demo directory by their stable names."""

    accounts: dict[str, Any]  # username -> row (id, agency_id, mobile, ...)
    windows: dict[str, int]  # code -> id
    agencies: dict[str, int]  # region code -> id
    matter_id: int

    def id(self, username: str) -> int:
        return int(self.accounts[username].id)


async def demo(server: Any) -> Demo:
    async with server.services.db.connect() as conn:
        accounts = {r.username: r for r in await conn.execute(sa.select(s.accounts))}
        windows = {r.code: r.id for r in await conn.execute(sa.select(s.windows))}
        agencies = {r.region_code: r.id for r in await conn.execute(sa.select(s.agencies))}
        matter_id = await conn.scalar(
            sa.select(s.matters.c.id).where(s.matters.c.code == "HN-ZJ-001")
        )
    return Demo(accounts, windows, agencies, int(matter_id))


@dataclass(frozen=True)
class Member:
    username: str
    role: str = "callee"
    declined: str | None = None  # a decline reason
    rating: int | None = None


async def insert_call(
    conn: Any,
    d: Demo,
    *,
    at: datetime,
    window: str = "FQ-ZJ-01",
    region: str = "410727",
    members: list[Member],
    answered_after: float | None = None,
    answered_by: str | None = None,
    late: bool = False,
    unnecessary_by: str | None = None,
    state: str | None = None,
) -> str:
    """One call from zz.a1 at the Zhengzhou window, with its case and members, in the
    transaction of ``conn`` (not committed)."""
    call_id = str(uuid.uuid4())
    answered_at = at + timedelta(seconds=answered_after) if answered_after is not None else None
    case_id = await conn.scalar(
        sa.insert(s.cases)
        .values(
            case_no=f"TB{region}-{at:%Y%m%d}-{uuid.uuid4().hex[:6]}",
            matter_id=d.matter_id,
            region_code=region,
            applicant_name="张三",
            applicant_id_number="410727199001011234",
            applicant_phone="13912345678",
            applicant_window_id=d.windows["ZZ-TB-01"],
            home_window_id=d.windows[window],
            created_by=d.id("zz.a1"),
            created_at=at - timedelta(minutes=5),
        )
        .returning(s.cases.c.id)
    )
    await conn.execute(
        sa.insert(s.calls).values(
            id=call_id,
            case_id=case_id,
            caller_id=d.id("zz.a1"),
            caller_window_id=d.windows["ZZ-TB-01"],
            window_id=d.windows[window],
            state=state or ("ended" if answered_at else "missed"),
            requested_at=at,
            overdue_at=at + timedelta(seconds=60) if late or answered_at is None else None,
            answered_at=answered_at,
            answered_by=d.id(answered_by) if answered_by else None,
            answered_late=late,
            ended_at=(answered_at or at) + timedelta(minutes=5),
            end_reason="hangup" if answered_at else "missed",
            unnecessary=unnecessary_by is not None,
            unnecessary_by=d.id(unnecessary_by) if unnecessary_by else None,
        )
    )
    has_caller = any(m.role == "caller" for m in members)
    for m in members if has_caller else [Member("zz.a1", role="caller"), *members]:
        await conn.execute(
            sa.insert(s.call_members).values(
                call_id=call_id,
                account_id=d.id(m.username),
                role=m.role,
                on_duty=m.role == "callee",
                declined_at=at + timedelta(seconds=5) if m.declined else None,
                decline_reason=m.declined,
                rating=m.rating,
                rated_at=at + timedelta(minutes=6) if m.rating is not None else None,
            )
        )
    return call_id


async def add_call(server: Any, d: Demo, **kwargs: Any) -> str:
    """One call from zz.a1 at the Zhengzhou window, with its case and members, committed."""
    async with server.services.db.begin() as conn:
        return await insert_call(conn, d, **kwargs)


async def add_missed_call(
    server: Any, d: Demo, at: datetime, staff: list[str], window: str = "FQ-ZJ-01"
) -> list[int]:
    """A call that went overdue and was never answered, and one pending miss per staff
    member rung, as the signaling layer records them; the miss ids."""
    region = "410225" if window.startswith("LK") else "410727"
    call_id = await add_call(
        server, d, at=at, window=window, region=region, members=[Member(u) for u in staff]
    )
    ended = at + timedelta(seconds=300)
    ids = []
    async with server.services.db.begin() as conn:
        for username in staff:
            ids.append(
                int(
                    await conn.scalar(
                        sa.insert(s.misses)
                        .values(
                            call_id=call_id,
                            account_id=d.id(username),
                            window_id=d.windows[window],
                            agency_id=d.accounts[username].agency_id,
                            occurred_at=ended,
                            month=month_of(ended),
                            status="pending",
                            updated_at=ended,
                        )
                        .returning(s.misses.c.id)
                    )
                )
            )
    return ids


async def add_presence(
    server: Any, d: Demo, username: str, spans: list[tuple[str, datetime, datetime | None]]
) -> None:
    async with server.services.db.begin() as conn:
        for status, start, end in spans:
            await conn.execute(
                sa.insert(s.presence_intervals).values(
                    account_id=d.id(username), status=status, started_at=start, ended_at=end
                )
            )


async def add_absence(server: Any, d: Demo, username: str, start: datetime, end: datetime) -> None:
    async with server.services.db.begin() as conn:
        await conn.execute(
            sa.insert(s.absences).values(
                account_id=d.id(username),
                starts_at=start,
                ends_at=end,
                reason="年休假",
                created_by=d.id("fq.sup"),
            )
        )


async def rows(server: Any, table: sa.Table, *where: Any) -> list[Any]:
    async with server.services.db.connect() as conn:
        return list(await conn.execute(sa.select(table).where(*where).order_by(table.c.id)))
