"""Issue 7, PostgreSQL: a transaction that writes calls bumps the report's validity rows of
their day and hour (``report_days``, ``report_hours``) once, at commit (migration 0007).

Every call request, answer and hang-up bumps the same two rows (today, this hour); bumped
when each row was written, their row locks were held from the first write to the commit,
across the server's round trips, and the node's transactions queued for them. The rollup's
own tests (test_report_rollup.py, test_report_hours.py) show the bumps still invalidate
what they must; here: once per transaction, not before the commit, no waiting between two
writers of the same hour, and the migration's downgrade and upgrade."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from oversight.days import local_day
from oversight.hours import hour_of
from storage import schema as s
from storage.database import Database
from storage.db import alembic_config, create_engine
from tests.integration.oversight.helpers import Demo, Member, demo, insert_call

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])  # SQLite: one writer anyway

AT = datetime(2026, 10, 15, 2, 10, tzinfo=UTC)  # 10:10 in Shanghai
STAFF = [Member("fq.h1"), Member("fq.h2"), Member("lk.h1")]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(create_engine(database_url))
    async with database.begin() as conn:  # the validity rows, as a rollup leaves them
        await conn.execute(sa.insert(s.report_days).values(day=local_day(AT), part="calls"))
        await conn.execute(sa.insert(s.report_hours).values(hour=hour_of(AT)))
    yield database
    await database.close()


async def people(db: Database) -> Demo:
    return await demo(SimpleNamespace(services=SimpleNamespace(db=db)))


async def versions(conn: Any) -> tuple[int, int]:
    """(the day's version, the hour's version) as ``conn`` sees them."""
    day = await conn.scalar(
        sa.select(s.report_days.c.version).where(
            s.report_days.c.day == local_day(AT), s.report_days.c.part == "calls"
        )
    )
    hour = await conn.scalar(
        sa.select(s.report_hours.c.version).where(s.report_hours.c.hour == hour_of(AT))
    )
    return int(day), int(hour)


async def test_a_call_and_its_members_bump_the_day_and_the_hour_once_at_commit(
    db: Database,
) -> None:
    d = await people(db)
    async with db.begin() as conn:
        call_id = await insert_call(conn, d, at=AT, members=STAFF, state="ringing")
        assert await versions(conn) == (0, 0), "bumped at commit, not before"
    async with db.connect() as conn:
        assert await versions(conn) == (1, 1), "one bump for the call and its four members"

    # a later transaction: the call answered, a member's rating, a member added
    async with db.begin() as conn:
        await conn.execute(
            sa.update(s.calls)
            .where(s.calls.c.id == call_id)
            .values(answered_at=AT + timedelta(seconds=9), answered_by=d.id("fq.h1"))
        )
        await conn.execute(
            sa.update(s.call_members)
            .where(s.call_members.c.call_id == call_id, s.call_members.c.role == "caller")
            .values(rating=5)
        )
        await conn.execute(
            sa.insert(s.call_members).values(
                call_id=call_id, account_id=d.id("fq.expert"), role="expert", on_duty=False
            )
        )
    async with db.connect() as conn:
        assert await versions(conn) == (2, 2)

    # a call moved to the next day: both days and both hours
    moved = AT + timedelta(days=1)
    async with db.begin() as conn:
        await conn.execute(sa.insert(s.report_days).values(day=local_day(moved), part="calls"))
        await conn.execute(sa.insert(s.report_hours).values(hour=hour_of(moved)))
    async with db.begin() as conn:
        await conn.execute(
            sa.update(s.calls).where(s.calls.c.id == call_id).values(requested_at=moved)
        )
    async with db.connect() as conn:
        assert await versions(conn) == (3, 3)
        assert (
            await conn.scalar(
                sa.select(s.report_hours.c.version).where(s.report_hours.c.hour == hour_of(moved))
            )
            == 1
        )


async def test_two_writers_of_the_same_hour_do_not_wait_for_each_other(db: Database) -> None:
    d = await people(db)
    async with db.begin() as first:
        await insert_call(first, d, at=AT, members=STAFF, state="ringing")
        # the first transaction is still open: a second writer of the same hour commits
        # without waiting for it (before 0007 it waited on the rows the first had bumped)
        async with db.begin() as second:
            await second.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            await asyncio.wait_for(
                insert_call(second, d, at=AT + timedelta(minutes=1), members=STAFF), 10
            )
        async with db.connect() as other:
            assert await versions(other) == (1, 1)
    async with db.connect() as conn:
        assert await versions(conn) == (2, 2)


async def test_the_migration_goes_down_to_bumps_per_row_and_up_again(db: Database) -> None:
    d = await people(db)

    def migrate(conn: sa.Connection, revision: str) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        if revision == "head":
            command.upgrade(cfg, "head")
        else:
            command.downgrade(cfg, revision)

    async def deferred() -> set[str]:
        async with db.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'report_%_touched'"
                    " AND tgdeferrable AND tginitdeferred"
                )
            )
            return {r.tgname for r in rows}

    assert await deferred() == {"report_calls_touched", "report_members_touched"}
    async with db.begin() as conn:
        await conn.run_sync(migrate, "0006")
    assert await deferred() == set()
    async with db.begin() as conn:
        await insert_call(conn, d, at=AT, members=STAFF)
    async with db.connect() as conn:
        assert await versions(conn) == (5, 5), "0006: the call and each of its 4 members"

    async with db.begin() as conn:
        await conn.run_sync(migrate, "head")
    assert await deferred() == {"report_calls_touched", "report_members_touched"}
    async with db.begin() as conn:
        await insert_call(conn, d, at=AT, members=STAFF)
    async with db.connect() as conn:
        assert await versions(conn) == (6, 6)
