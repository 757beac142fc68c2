"""R2, R10, R12, R13 (issue 7): the monthly report read from the daily rollup equals the same
report aggregated from scratch over the raw rows, for a finished month and a running one, and
stays equal after changes made after the fact (ratings, declines, ``unnecessary`` marks,
presence corrected, verdicts, absences, office hours). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from directory.store import load_snapshot
from oversight.report import monthly_report, refresh_rollup
from storage import schema as s
from tests.integration.oversight.helpers import (
    Demo,
    Member,
    add_absence,
    add_call,
    add_missed_call,
    add_presence,
    demo,
)

MONTH = "2026-10"
OCT_START = datetime(2026, 9, 30, 16, tzinfo=UTC)  # 1 October 00:00 in Asia/Shanghai
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
AFTER = datetime(2026, 11, 3, 2, tzinfo=UTC)  # the month is over
MID = OCT_START + 14 * DAY + 10 * HOUR  # 15 October 10:00 there: 14 finished days
REASONS = ["正在办理其他业务", "  窗口人员临时离开 ", "", None]


async def both(server: Any, d: Demo, now: datetime, region: str = "410000") -> dict[str, Any]:
    """The report from the rollup, after checking it against the one from scratch."""
    async with server.services.db.connect() as conn:
        snap = await load_snapshot(conn, calendar_fallback="weekdays")
    args = {"agency_id": d.agencies[region], "month": MONTH, "now": now}
    scratch = await monthly_report(server.services.db, snap, rollup_days=False, **args)
    rolled = await monthly_report(server.services.db, snap, **args)
    assert rolled == scratch
    return rolled


async def a_month(server: Any, d: Demo, rng: random.Random) -> list[str]:
    """Calls to the Fengqiu (around the clock) and Lankao (office hours) windows on random
    days and times, some on either side of local midnight; presence that crosses midnight
    and stays open; an absence; misses with verdicts. The call ids."""
    call_ids = []
    windows = {"FQ-ZJ-01": ("410727", ["fq.h1", "fq.h2"]), "LK-ZJ-01": ("410225", ["lk.h1"])}
    for i in range(36):
        code = rng.choice(sorted(windows))
        region, staff = windows[code]
        at = OCT_START + rng.randrange(31) * DAY + timedelta(seconds=rng.randrange(86400))
        if i < 3:  # the first and last instants of the month, and a minute before midnight
            at = [OCT_START, OCT_START + 31 * DAY - timedelta(seconds=1),
                  OCT_START + 9 * DAY - timedelta(minutes=1)][i]  # fmt: skip
        answered_after = rng.choice([None, rng.uniform(1, 59), rng.uniform(60, 200), 30.5])
        answered_by = rng.choice(staff) if answered_after is not None else None
        members = [Member("zz.a1", "caller", rating=rng.choice([None, 1, 4, 5]))]
        members += [
            Member(u, declined=rng.choice(REASONS) if rng.random() < 0.3 else None) for u in staff
        ]
        call_ids.append(
            await add_call(
                server, d, at=at, window=code, region=region, members=members,
                answered_after=answered_after, answered_by=answered_by,
                late=answered_after is not None and answered_after > 60,
                unnecessary_by=answered_by if rng.random() < 0.2 else None,
            )
        )  # fmt: skip
    for i in range(4):
        code = "FQ-ZJ-01" if i % 2 else "LK-ZJ-01"
        await add_missed_call(
            server, d, OCT_START + (3 + 7 * i) * DAY + 5 * HOUR, windows[code][1], window=code
        )
    for username in ("fq.h1", "fq.h2", "lk.h1"):
        spans: list[tuple[str, datetime, datetime | None]] = []
        t = OCT_START - DAY + timedelta(minutes=rng.randrange(600))
        while t < OCT_START + 31 * DAY:
            length = timedelta(minutes=rng.randrange(30, 2000))
            spans.append((rng.choice(["online", "busy", "away"]), t, t + length))
            t += length + timedelta(minutes=rng.randrange(0, 900))
        spans.append(("online", t, None))
        await add_presence(server, d, username, spans)
    await add_absence(server, d, "fq.h2", OCT_START + 20 * DAY + 5 * HOUR, OCT_START + 22 * DAY)
    return call_ids


async def versions(server: Any) -> dict[tuple[str, str], tuple[int, int | None]]:
    async with server.services.db.connect() as conn:
        return {
            (str(r.day), r.part): (r.version, r.built_version)
            for r in await conn.execute(sa.select(s.report_days))
        }


async def execute(server: Any, *statements: Any) -> None:
    async with server.services.db.begin() as conn:
        for statement in statements:
            await conn.execute(statement)


async def test_rollup_equals_from_scratch_for_a_finished_and_a_running_month(
    start_server: Any,
) -> None:
    server = await start_server()
    d = await demo(server)
    await a_month(server, d, random.Random(7))
    running = await both(server, d, MID)
    built = await versions(server)
    assert len([k for k in built if k[1] == "calls"]) == 14, "1-14 October rolled up, not 15th"
    assert all(v == b for v, b in built.values())
    finished = await both(server, d, AFTER)
    assert finished["rows"][0]["requests"] == 40
    assert running["rows"][0]["requests"] == finished["rows"][0]["requests"], "calls ahead of now"
    assert running["rows"][0]["offline_minutes"] < finished["rows"][0]["offline_minutes"]
    for region in ("410727", "410700", "410225"):  # a county, a city, another county
        await both(server, d, AFTER, region)
    assert len([k for k in await versions(server) if k[1] == "offline"]) == 31
    async with server.services.db.connect() as conn:
        spans = {(r.part, str(r.after)) for r in await conn.execute(sa.select(s.report_spans))}
    assert spans == {("calls", "2026-11-01"), ("offline", "2026-11-01")}, "the month summed"


async def test_changes_after_the_fact_reach_the_rollup(start_server: Any) -> None:
    server = await start_server()
    d = await demo(server)
    call_ids = await a_month(server, d, random.Random(11))
    before = await both(server, d, AFTER)
    c, m, p = s.calls.c, s.call_members.c, s.presence_intervals.c
    first = call_ids[0]  # 1 October 00:00 there

    # R13: a late rating; R10: a decline's reason corrected; an unnecessary mark
    await execute(
        server,
        sa.update(s.call_members)
        .where(m.call_id == first, m.role == "caller")
        .values(rating=2, rated_at=AFTER),  # never drawn above,
    )
    stale = await versions(server)
    assert stale[("2026-10-01", "calls")][0] > stale[("2026-10-01", "calls")][1]
    assert stale[("2026-10-02", "calls")][0] == stale[("2026-10-02", "calls")][1]
    after_rating = await both(server, d, AFTER)
    assert after_rating != before
    await execute(
        server,
        sa.update(s.call_members)
        .where(m.call_id == call_ids[5], m.role == "callee")
        .values(declined_at=AFTER, decline_reason="非本窗口事项"),
        sa.update(s.calls)
        .where(c.id == call_ids[6])
        .values(unnecessary=True, unnecessary_by=d.id("fq.h1")),
        sa.update(s.calls)
        .where(c.id == call_ids[7])
        .values(requested_at=OCT_START + 12 * DAY + 5 * HOUR),  # moved to another day
    )
    await both(server, d, AFTER)

    # R2: presence corrected afterwards: an interval added, one deleted, the open one
    # closed back in the middle of the month, one moved
    await add_presence(server, d, "lk.h1", [("online", OCT_START + 2 * DAY, OCT_START + 4 * DAY)])
    await both(server, d, AFTER)
    async with server.services.db.connect() as conn:
        ids = list(await conn.scalars(sa.select(p.id).order_by(p.id)))
    await execute(
        server,
        sa.delete(s.presence_intervals).where(p.id == ids[3]),
        sa.update(s.presence_intervals)
        .where(p.ended_at.is_(None), p.account_id == d.id("fq.h1"))
        .values(ended_at=OCT_START + 17 * DAY + 3 * HOUR),
        sa.update(s.presence_intervals)
        .where(p.id == ids[8])
        .values(started_at=OCT_START + 9 * DAY, ended_at=OCT_START + 9 * DAY + 13 * HOUR),
    )
    await both(server, d, AFTER)

    # R5 verdicts and absences are read live
    await execute(server, sa.update(s.misses).values(status="excused"))
    await add_absence(server, d, "lk.h1", OCT_START + 3 * DAY, OCT_START + 5 * DAY)
    final = await both(server, d, AFTER)
    assert final["rows"][0]["misses"]["excused"] > before["rows"][0]["misses"]["excused"]

    # office hours changed: the offline rollup no longer matches and is recomputed
    prior = await both(server, d, AFTER, "410225")
    async with server.services.db.connect() as conn:
        lankao = await conn.scalar(
            sa.select(s.windows.c.hall_id).where(s.windows.c.id == d.windows["LK-ZJ-01"])
        )
    await execute(
        server,
        sa.update(s.office_hours).where(s.office_hours.c.hall_id == lankao).values(opens="07:00"),
    )
    changed = await both(server, d, AFTER, "410225")
    assert changed["rows"][0]["offline_minutes"] > prior["rows"][0]["offline_minutes"]


async def test_a_periodic_refresh_rolls_up_ahead_of_the_report(start_server: Any) -> None:
    server = await start_server()
    d = await demo(server)
    await a_month(server, d, random.Random(3))
    async with server.services.db.connect() as conn:
        snap = await load_snapshot(conn, calendar_fallback="weekdays")
    await refresh_rollup(server.services.db, snap, AFTER)  # 3 November: October and November
    built = await versions(server)
    assert {day for day, part in built if part == "calls"} == {
        f"2026-{m:02d}-{n:02d}" for m, last in ((10, 31), (11, 2)) for n in range(1, last + 1)
    }
    assert all(v == b for v, b in built.values())
    async with server.services.db.connect() as conn:
        spans = {(r.month, str(r.after)) for r in await conn.execute(sa.select(s.report_spans))}
    assert ("2026-10", "2026-11-01") in spans and ("2026-11", "2026-11-03") in spans
    await both(server, d, AFTER)


async def test_reports_at_the_same_time_roll_up_once(start_server: Any) -> None:
    server = await start_server()
    d = await demo(server)
    await a_month(server, d, random.Random(5))
    async with server.services.db.connect() as conn:
        snap = await load_snapshot(conn, calendar_fallback="weekdays")
    args = {"agency_id": d.agencies["410000"], "month": MONTH, "now": AFTER}
    db = server.services.db
    first, second, third = await asyncio.gather(
        *(monthly_report(db, snap, **args) for _ in range(3))
    )
    assert first == second == third == await monthly_report(db, snap, rollup_days=False, **args)
    m = s.report_monthly.c
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(m.window_id, m.account_id))).all()
    assert rows and len(rows) == len(set(rows)), "the month summed once, not twice"


async def test_the_server_rolls_up_finished_days_in_the_background(start_server: Any) -> None:
    """The node's hourly job (oversight/http.py) is what keeps reports fast: run it now."""
    from oversight.days import finished_days
    from oversight.http import ROLLUP
    from oversight.rules import month_of

    server = await start_server()
    d = await demo(server)
    await a_month(server, d, random.Random(5))
    roller = server.app[ROLLUP]
    assert roller.name == "report rollup" and roller.runs == 0
    await roller.run_now()
    now = server.services.clock.now()
    expected = {str(day) for day in finished_days(month_of(now), now)}
    built = {day for day, part in await versions(server) if part == "calls"}
    assert expected <= built


async def test_a_change_while_the_rollup_computes_leaves_the_day_stale(
    start_server: Any, monkeypatch: Any
) -> None:
    """The rollup reads and computes without a lock (a write transaction on SQLite locks the
    whole database): a rating given meanwhile is not in what it computed, so the day must
    stay stale after it, not be marked built with the rating missing."""
    import oversight.rollup as rollup

    server = await start_server()
    d = await demo(server)
    call_ids = await a_month(server, d, random.Random(7))
    m = s.call_members.c
    aggregate = rollup.aggregate
    changed: list[bool] = []

    async def aggregate_then_rate(conn: Any, **kwargs: Any) -> Any:
        parts = await aggregate(conn, **kwargs)
        if not changed:  # the first day run is read: now a late rating of 1 October's call
            changed.append(True)
            await execute(
                server,
                sa.update(s.call_members)
                .where(m.call_id == call_ids[0], m.role == "caller")
                .values(rating=3, rated_at=AFTER),
            )
        return parts

    monkeypatch.setattr(rollup, "aggregate", aggregate_then_rate)
    async with server.services.db.connect() as conn:
        snap = await load_snapshot(conn, calendar_fallback="weekdays")
    await refresh_rollup(server.services.db, snap, AFTER)
    assert changed
    built = await versions(server)
    version, built_version = built[("2026-10-01", "calls")]
    assert built_version is not None and version > built_version, "the rating is not rolled up"
    assert built[("2026-10-02", "calls")][0] == built[("2026-10-02", "calls")][1]
    monkeypatch.setattr(rollup, "aggregate", aggregate)
    await both(server, d, AFTER)  # rebuilt with the rating, equal to the raw rows
