"""The monthly report's hourly rollup of the current day (issue 7): finished hours of the
unfinished day aggregated once, so a report of a running month reads only the hour in
progress live, and the triggers of 0002 extended to mark an hour stale as they mark its day;
the day's rolled-up hours summed once (``report_today``), read together with the month's sum.

Hours are numbered in whole hours since the Unix epoch (UTC; China keeps UTC+8 all year, so
every hour starts on a local hour too), an integer on both engines.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# as in 0002: the columns whose change alters a call's figures
CALL_COLUMNS = "window_id, requested_at, answered_at, answered_by, answered_late, unnecessary, " \
    "unnecessary_by"  # fmt: skip
MEMBER_COLUMNS = "call_id, account_id, role, declined_at, decline_reason, rating"

# SQLite: timestamps are naive UTC text; strftime('%s') gives the Unix seconds.
HOUR_SQLITE = "CAST(strftime('%s', {}) AS INTEGER) / 3600"

TRIGGERS_SQLITE = [
    f"""CREATE TRIGGER report_hours_calls_inserted AFTER INSERT ON calls BEGIN
       UPDATE report_hours SET version = version + 1
        WHERE hour = {HOUR_SQLITE.format("NEW.requested_at")}; END""",
    f"""CREATE TRIGGER report_hours_calls_deleted AFTER DELETE ON calls BEGIN
       UPDATE report_hours SET version = version + 1
        WHERE hour = {HOUR_SQLITE.format("OLD.requested_at")}; END""",
    f"""CREATE TRIGGER report_hours_calls_updated AFTER UPDATE OF {CALL_COLUMNS} ON calls BEGIN
       UPDATE report_hours SET version = version + 1
        WHERE hour IN ({HOUR_SQLITE.format("OLD.requested_at")},
                       {HOUR_SQLITE.format("NEW.requested_at")}); END""",
    f"""CREATE TRIGGER report_hours_members_inserted AFTER INSERT ON call_members BEGIN
       UPDATE report_hours SET version = version + 1
        WHERE hour IN (SELECT {HOUR_SQLITE.format("requested_at")} FROM calls
                        WHERE id = NEW.call_id); END""",
    f"""CREATE TRIGGER report_hours_members_deleted AFTER DELETE ON call_members BEGIN
       UPDATE report_hours SET version = version + 1
        WHERE hour IN (SELECT {HOUR_SQLITE.format("requested_at")} FROM calls
                        WHERE id = OLD.call_id); END""",
    f"""CREATE TRIGGER report_hours_members_updated AFTER UPDATE OF {MEMBER_COLUMNS}
       ON call_members BEGIN
       UPDATE report_hours SET version = version + 1
        WHERE hour IN (SELECT {HOUR_SQLITE.format("requested_at")} FROM calls
                        WHERE id IN (OLD.call_id, NEW.call_id)); END""",
]

DROP_SQLITE = [
    f"DROP TRIGGER IF EXISTS {name}"
    for name in (
        "report_hours_calls_inserted", "report_hours_calls_deleted", "report_hours_calls_updated",
        "report_hours_members_inserted", "report_hours_members_deleted",
        "report_hours_members_updated",
    )
]  # fmt: skip

# PostgreSQL: the trigger functions of 0002 replaced by ones that also bump the hours.
CALLS_TOUCHED = """CREATE OR REPLACE FUNCTION report_calls_touched() RETURNS trigger
   LANGUAGE plpgsql AS $$
   DECLARE days date[]; hours bigint[];
   BEGIN
     IF TG_OP <> 'INSERT' THEN
       days := days || report_local_day(OLD.requested_at);
       hours := hours || report_hour(OLD.requested_at);
     END IF;
     IF TG_OP <> 'DELETE' THEN
       days := days || report_local_day(NEW.requested_at);
       hours := hours || report_hour(NEW.requested_at);
     END IF;
     UPDATE report_days SET version = version + 1 WHERE part = 'calls' AND day = ANY(days);
     UPDATE report_hours SET version = version + 1 WHERE hour = ANY(hours);
     RETURN NULL;
   END $$"""

MEMBERS_TOUCHED = """CREATE OR REPLACE FUNCTION report_members_touched() RETURNS trigger
   LANGUAGE plpgsql AS $$
   DECLARE ids text[]; at timestamptz[];
   BEGIN
     IF TG_OP <> 'INSERT' THEN ids := ids || OLD.call_id::text; END IF;
     IF TG_OP <> 'DELETE' THEN ids := ids || NEW.call_id::text; END IF;
     at := ARRAY(SELECT requested_at FROM calls WHERE id = ANY(ids));
     UPDATE report_days SET version = version + 1
      WHERE part = 'calls' AND day IN (SELECT report_local_day(x) FROM unnest(at) AS x);
     UPDATE report_hours SET version = version + 1
      WHERE hour IN (SELECT report_hour(x) FROM unnest(at) AS x);
     RETURN NULL;
   END $$"""

# 0002's bodies, for the downgrade
CALLS_TOUCHED_0002 = """CREATE OR REPLACE FUNCTION report_calls_touched() RETURNS trigger
   LANGUAGE plpgsql AS $$
   DECLARE days date[];
   BEGIN
     IF TG_OP <> 'INSERT' THEN days := days || report_local_day(OLD.requested_at); END IF;
     IF TG_OP <> 'DELETE' THEN days := days || report_local_day(NEW.requested_at); END IF;
     UPDATE report_days SET version = version + 1 WHERE part = 'calls' AND day = ANY(days);
     RETURN NULL;
   END $$"""

MEMBERS_TOUCHED_0002 = """CREATE OR REPLACE FUNCTION report_members_touched() RETURNS trigger
   LANGUAGE plpgsql AS $$
   DECLARE ids text[];
   BEGIN
     IF TG_OP <> 'INSERT' THEN ids := ids || OLD.call_id::text; END IF;
     IF TG_OP <> 'DELETE' THEN ids := ids || NEW.call_id::text; END IF;
     UPDATE report_days SET version = version + 1
      WHERE part = 'calls'
        AND day IN (SELECT report_local_day(requested_at) FROM calls WHERE id = ANY(ids));
     RETURN NULL;
   END $$"""

TRIGGERS_POSTGRESQL = [
    """CREATE FUNCTION report_hour(at timestamptz) RETURNS bigint
       LANGUAGE sql IMMUTABLE AS $$ SELECT floor(extract(epoch FROM at) / 3600)::bigint $$""",
    CALLS_TOUCHED,
    MEMBERS_TOUCHED,
]

DROP_POSTGRESQL = [
    CALLS_TOUCHED_0002,
    MEMBERS_TOUCHED_0002,
    "DROP FUNCTION IF EXISTS report_hour(timestamptz)",
]


def upgrade() -> None:
    op.create_table(
        "report_hours",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("built_version", sa.Integer(), nullable=True),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_report_hours")),
    )
    op.create_table(
        "report_hourly",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("window_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("answered_late", sa.Integer(), nullable=False),
        sa.Column("unnecessary", sa.Integer(), nullable=False),
        sa.Column("rating_sum", sa.Integer(), nullable=False),
        sa.Column("ratings", sa.Integer(), nullable=False),
        sa.Column("waits", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_hourly")),
    )
    op.create_index(op.f("ix_report_hourly_hour"), "report_hourly", ["hour"], unique=False)
    op.create_table(
        "report_hourly_declines",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("window_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("declines", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "hour", "window_id", "account_id", "reason", name=op.f("pk_report_hourly_declines")
        ),
    )
    op.create_table(
        "report_today",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("window_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("answered_late", sa.Integer(), nullable=False),
        sa.Column("unnecessary", sa.Integer(), nullable=False),
        sa.Column("rating_sum", sa.Integer(), nullable=False),
        sa.Column("ratings", sa.Integer(), nullable=False),
        sa.Column("waits", sa.Text(), nullable=True),
        sa.Column("declines", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_today")),
    )
    op.create_index(op.f("ix_report_today_month"), "report_today", ["month"], unique=False)
    op.create_table(
        "report_today_spans",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("hours", sa.Text(), nullable=True),
        sa.Column("built", sa.BigInteger(), nullable=True),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_report_today_spans")),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in TRIGGERS_SQLITE if sqlite else TRIGGERS_POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in DROP_SQLITE if sqlite else DROP_POSTGRESQL:
        op.execute(statement)
    op.drop_table("report_today_spans")
    op.drop_index(op.f("ix_report_today_month"), table_name="report_today")
    op.drop_table("report_today")
    op.drop_table("report_hourly_declines")
    op.drop_index(op.f("ix_report_hourly_hour"), table_name="report_hourly")
    op.drop_table("report_hourly")
    op.drop_table("report_hours")
