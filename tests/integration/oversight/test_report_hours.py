"""Issue 7: the current day's hours rolled up (oversight/hours.py). A report of a running
month reads the day's rolled-up hours and only the hour in progress live, and equals the
report from scratch as the hours pass, as calls come into an hour rolled up ahead of time,
and after late changes to a finished hour (an answer after the hour, a rating, a decline, a
call moved). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from directory.store import load_snapshot
from oversight.hours import hour_of
from oversight.report import refresh_rollup
from storage import schema as s
from tests.integration.oversight.helpers import Demo, Member, add_call, demo
from tests.integration.oversight.test_report_rollup import (
    DAY,
    HOUR,
    MID,
    OCT_START,
    a_month,
    both,
    execute,
)

DAY_15 = OCT_START + 14 * DAY  # 15 October 00:00 there; MID is 10:00 that day
FIRST = hour_of(DAY_15)


async def hours(server: Any) -> dict[int, tuple[int, int | None]]:
    """hour (0-23 of 15 October) -> (version, built version)."""
    async with server.services.db.connect() as conn:
        return {
            r.hour - FIRST: (r.version, r.built_version)
            for r in await conn.execute(sa.select(s.report_hours))
        }


async def summed_hours(server: Any) -> set[int]:
    """The hours of 15 October summed in ``report_today``."""
    async with server.services.db.connect() as conn:
        text = await conn.scalar(sa.select(s.report_today_spans.c.hours))
    return {int(h) - FIRST for h in text.split(",")} if text else set()


def current(built: dict[int, tuple[int, int | None]]) -> set[int]:
    return {h for h, (v, b) in built.items() if v == b}


async def call(server: Any, d: Demo, at: Any, **kwargs: Any) -> str:
    members = [Member("zz.a1", "caller", rating=kwargs.pop("rating", None)),
               Member("fq.h1", declined=kwargs.pop("declined", None)), Member("fq.h2")]  # fmt: skip
    return await add_call(server, d, at=at, members=members, **kwargs)


async def test_the_days_hours_roll_up_and_equal_the_report_from_scratch(
    start_server: Any,
) -> None:
    server = await start_server()
    d = await demo(server)
    await a_month(server, d, random.Random(17))
    ids = {}
    for hour, minute in ((2, 10), (9, 0), (9, 59), (10, 5), (13, 30), (23, 59)):
        ids[hour, minute] = await call(
            server, d, DAY_15 + hour * HOUR + timedelta(minutes=minute),
            answered_after=12.5, answered_by="fq.h2",
        )  # fmt: skip
    ringing = await call(server, d, DAY_15 + 9 * HOUR + timedelta(minutes=59, seconds=50),
                         state="ringing")  # fmt: skip

    # 10:00: every hour of the day but 10 rolled up (13 and 23 ahead of time), 10 live
    await both(server, d, MID)
    built = await hours(server)
    assert set(built) == current(built) == set(range(24)) - {10}
    assert await summed_hours(server) == set(range(24)) - {10}, "read with the month's sum"

    # late changes to finished hours: the ringing call answered after 10:00, a rating and a
    # decline on calls of 9:00 and 2:00, a call of 2:00 moved to 11:00
    c, m = s.calls.c, s.call_members.c
    await execute(
        server,
        sa.update(s.calls).where(c.id == ringing).values(
            state="ended", answered_at=MID + timedelta(seconds=20), answered_by=d.id("fq.h1"),
            answered_late=True),
        sa.update(s.call_members).where(m.call_id == ids[9, 0], m.role == "caller")
        .values(rating=3),
        sa.update(s.call_members).where(m.call_id == ids[2, 10], m.account_id == d.id("fq.h1"))
        .values(declined_at=DAY_15 + 2 * HOUR, decline_reason="网络故障"),
    )  # fmt: skip
    assert current(await hours(server)) == set(range(24)) - {10, 9, 2}
    await both(server, d, MID)
    await execute(
        server,
        sa.update(s.calls).where(c.id == ids[2, 10]).values(requested_at=DAY_15 + 11 * HOUR),
    )
    assert current(await hours(server)) == set(range(24)) - {10, 2, 11}
    # a call into an hour rolled up ahead of time, while it is in progress: read live
    await call(server, d, MID + 15 * timedelta(minutes=1), answered_after=3.0,
               answered_by="fq.h1", rating=5, declined="其他")  # fmt: skip
    await call(server, d, DAY_15 + 13 * HOUR + timedelta(minutes=1))
    await both(server, d, MID + 15 * timedelta(minutes=1))

    # 12:30: hours 10 and 11 over, rolled up; 13 again; 12 live (rolled up ahead of time
    # and untouched, but in progress)
    noon = DAY_15 + 12 * HOUR + timedelta(minutes=30)
    await both(server, d, noon)
    assert current(await hours(server)) == set(range(24))
    assert await summed_hours(server) == set(range(24)) - {12}
    # the city and a county read the same rolled-up hours
    for region in ("410700", "410727"):
        await both(server, d, noon, region)


async def test_the_hourly_job_rolls_up_the_days_hours_and_drops_old_ones(
    start_server: Any,
) -> None:
    server = await start_server()
    d = await demo(server)
    await a_month(server, d, random.Random(19))
    async with server.services.db.connect() as conn:
        snap = await load_snapshot(conn, calendar_fallback="weekdays")
    await refresh_rollup(server.services.db, snap, MID)
    built = await hours(server)
    assert set(built) == current(built) == set(range(24)) - {10}
    await both(server, d, MID)
    # three days on: the hours of 15 October are gone, those of 18 October rolled up
    later = MID + 3 * DAY
    await refresh_rollup(server.services.db, snap, later)
    assert set(await hours(server)) == {72 + h for h in range(24)} - {82}
    async with server.services.db.connect() as conn:
        oldest = await conn.scalar(sa.select(sa.func.min(s.report_hourly.c.hour)))
    assert oldest is None or oldest >= FIRST + 72
    await both(server, d, later)
