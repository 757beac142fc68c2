"""The monthly report's daily rollup and its monthly sums (issue 7), the triggers that mark
a rolled-up day stale when its calls, call members or presence intervals change, an index of
callers' ratings and one of presence intervals by end.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Columns whose change alters a day's figures (signaling also updates state, ended_at, ...).
CALL_COLUMNS = "window_id, requested_at, answered_at, answered_by, answered_late, unnecessary, " \
    "unnecessary_by"  # fmt: skip
MEMBER_COLUMNS = "call_id, account_id, role, declined_at, decline_reason, rating"

# On SQLite timestamps are naive UTC text; China keeps UTC+8 all year, hence '+8 hours'.
TRIGGERS_SQLITE = [
    # calls: the day the call was requested (both days if that moved)
    """CREATE TRIGGER report_calls_inserted AFTER INSERT ON calls BEGIN
       UPDATE report_days SET version = version + 1
        WHERE part = 'calls' AND day = date(NEW.requested_at, '+8 hours'); END""",
    """CREATE TRIGGER report_calls_deleted AFTER DELETE ON calls BEGIN
       UPDATE report_days SET version = version + 1
        WHERE part = 'calls' AND day = date(OLD.requested_at, '+8 hours'); END""",
    f"""CREATE TRIGGER report_calls_updated AFTER UPDATE OF {CALL_COLUMNS} ON calls BEGIN
       UPDATE report_days SET version = version + 1
        WHERE part = 'calls' AND day IN (date(OLD.requested_at, '+8 hours'),
                                         date(NEW.requested_at, '+8 hours')); END""",
    # call members (declines, ratings): the day of their call
    """CREATE TRIGGER report_members_inserted AFTER INSERT ON call_members BEGIN
       UPDATE report_days SET version = version + 1
        WHERE part = 'calls' AND day IN (SELECT date(requested_at, '+8 hours') FROM calls
                                          WHERE id = NEW.call_id); END""",
    """CREATE TRIGGER report_members_deleted AFTER DELETE ON call_members BEGIN
       UPDATE report_days SET version = version + 1
        WHERE part = 'calls' AND day IN (SELECT date(requested_at, '+8 hours') FROM calls
                                          WHERE id = OLD.call_id); END""",
    f"""CREATE TRIGGER report_members_updated AFTER UPDATE OF {MEMBER_COLUMNS} ON call_members
       BEGIN
       UPDATE report_days SET version = version + 1
        WHERE part = 'calls' AND day IN (SELECT date(requested_at, '+8 hours') FROM calls
                                          WHERE id IN (OLD.call_id, NEW.call_id)); END""",
    # presence: every day the interval covers (open-ended: every day from its start)
    """CREATE TRIGGER report_presence_inserted AFTER INSERT ON presence_intervals BEGIN
       UPDATE report_days SET version = version + 1
        WHERE part = 'offline' AND day >= date(NEW.started_at, '+8 hours')
          AND (NEW.ended_at IS NULL OR day <= date(NEW.ended_at, '+8 hours')); END""",
    """CREATE TRIGGER report_presence_deleted AFTER DELETE ON presence_intervals BEGIN
       UPDATE report_days SET version = version + 1
        WHERE part = 'offline' AND day >= date(OLD.started_at, '+8 hours')
          AND (OLD.ended_at IS NULL OR day <= date(OLD.ended_at, '+8 hours')); END""",
    # a close (only the end moves): the days between the old and the new end, none of them
    # finished yet when the interval is closed at the time of the change
    """CREATE TRIGGER report_presence_closed AFTER UPDATE ON presence_intervals
       WHEN OLD.account_id = NEW.account_id AND OLD.status = NEW.status
            AND OLD.started_at = NEW.started_at
       BEGIN
       UPDATE report_days SET version = version + 1
        WHERE part = 'offline'
          AND day >= date(min(coalesce(OLD.ended_at, NEW.ended_at),
                              coalesce(NEW.ended_at, OLD.ended_at)), '+8 hours')
          AND (OLD.ended_at IS NULL OR NEW.ended_at IS NULL
               OR day <= date(max(OLD.ended_at, NEW.ended_at), '+8 hours')); END""",
    """CREATE TRIGGER report_presence_moved AFTER UPDATE ON presence_intervals
       WHEN NOT (OLD.account_id = NEW.account_id AND OLD.status = NEW.status
                 AND OLD.started_at = NEW.started_at)
       BEGIN
       UPDATE report_days SET version = version + 1
        WHERE part = 'offline'
          AND day >= date(min(OLD.started_at, NEW.started_at), '+8 hours')
          AND (OLD.ended_at IS NULL OR NEW.ended_at IS NULL
               OR day <= date(max(OLD.ended_at, NEW.ended_at), '+8 hours')); END""",
]

TRIGGERS_POSTGRESQL = [
    """CREATE FUNCTION report_local_day(at timestamptz) RETURNS date
       LANGUAGE sql IMMUTABLE AS $$ SELECT (at AT TIME ZONE 'Asia/Shanghai')::date $$""",
    """CREATE FUNCTION report_calls_touched() RETURNS trigger LANGUAGE plpgsql AS $$
       DECLARE days date[];
       BEGIN
         IF TG_OP <> 'INSERT' THEN days := days || report_local_day(OLD.requested_at); END IF;
         IF TG_OP <> 'DELETE' THEN days := days || report_local_day(NEW.requested_at); END IF;
         UPDATE report_days SET version = version + 1 WHERE part = 'calls' AND day = ANY(days);
         RETURN NULL;
       END $$""",
    f"""CREATE TRIGGER report_calls_touched
        AFTER INSERT OR DELETE OR UPDATE OF {CALL_COLUMNS} ON calls
        FOR EACH ROW EXECUTE FUNCTION report_calls_touched()""",
    """CREATE FUNCTION report_members_touched() RETURNS trigger LANGUAGE plpgsql AS $$
       DECLARE ids text[];
       BEGIN
         IF TG_OP <> 'INSERT' THEN ids := ids || OLD.call_id::text; END IF;
         IF TG_OP <> 'DELETE' THEN ids := ids || NEW.call_id::text; END IF;
         UPDATE report_days SET version = version + 1
          WHERE part = 'calls'
            AND day IN (SELECT report_local_day(requested_at) FROM calls WHERE id = ANY(ids));
         RETURN NULL;
       END $$""",
    f"""CREATE TRIGGER report_members_touched
        AFTER INSERT OR DELETE OR UPDATE OF {MEMBER_COLUMNS} ON call_members
        FOR EACH ROW EXECUTE FUNCTION report_members_touched()""",
    """CREATE FUNCTION report_presence_touched() RETURNS trigger LANGUAGE plpgsql AS $$
       DECLARE lo timestamptz; hi timestamptz;
       BEGIN
         IF TG_OP = 'INSERT' THEN
           lo := NEW.started_at; hi := NEW.ended_at;
         ELSIF TG_OP = 'DELETE' THEN
           lo := OLD.started_at; hi := OLD.ended_at;
         ELSIF OLD.account_id = NEW.account_id AND OLD.status = NEW.status
               AND OLD.started_at = NEW.started_at THEN
           -- a close: only the days between the old and the new end
           IF OLD.ended_at IS NOT DISTINCT FROM NEW.ended_at THEN RETURN NULL; END IF;
           lo := least(OLD.ended_at, NEW.ended_at);
           hi := CASE WHEN OLD.ended_at IS NOT NULL AND NEW.ended_at IS NOT NULL
                      THEN greatest(OLD.ended_at, NEW.ended_at) END;
         ELSE
           lo := least(OLD.started_at, NEW.started_at);
           hi := CASE WHEN OLD.ended_at IS NOT NULL AND NEW.ended_at IS NOT NULL
                      THEN greatest(OLD.ended_at, NEW.ended_at) END;
         END IF;
         UPDATE report_days SET version = version + 1
          WHERE part = 'offline' AND day >= report_local_day(lo)
            AND (hi IS NULL OR day <= report_local_day(hi));
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER report_presence_touched
       AFTER INSERT OR DELETE OR UPDATE ON presence_intervals
       FOR EACH ROW EXECUTE FUNCTION report_presence_touched()""",
]

DROP_SQLITE = [
    f"DROP TRIGGER IF EXISTS {name}"
    for name in (
        "report_calls_inserted", "report_calls_deleted", "report_calls_updated",
        "report_members_inserted", "report_members_deleted", "report_members_updated",
        "report_presence_inserted", "report_presence_deleted", "report_presence_closed",
        "report_presence_moved",
    )
]  # fmt: skip

DROP_POSTGRESQL = [
    "DROP TRIGGER IF EXISTS report_presence_touched ON presence_intervals",
    "DROP TRIGGER IF EXISTS report_members_touched ON call_members",
    "DROP TRIGGER IF EXISTS report_calls_touched ON calls",
    "DROP FUNCTION IF EXISTS report_presence_touched()",
    "DROP FUNCTION IF EXISTS report_members_touched()",
    "DROP FUNCTION IF EXISTS report_calls_touched()",
    "DROP FUNCTION IF EXISTS report_local_day(timestamptz)",
]

RATED_CALLER = "role = 'caller' AND rating IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "report_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("part", sa.String(length=8), nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("built_version", sa.Integer(), nullable=True),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("day", "part", name=op.f("pk_report_days")),
    )
    op.create_table(
        "report_daily",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("window_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("answered_late", sa.Integer(), nullable=False),
        sa.Column("unnecessary", sa.Integer(), nullable=False),
        sa.Column("rating_sum", sa.Integer(), nullable=False),
        sa.Column("ratings", sa.Integer(), nullable=False),
        sa.Column("waits", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_daily")),
    )
    op.create_index(op.f("ix_report_daily_day"), "report_daily", ["day"], unique=False)
    op.create_table(
        "report_daily_declines",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("window_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("declines", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "window_id", "account_id", "reason", name=op.f("pk_report_daily_declines")
        ),
    )
    op.create_table(
        "report_offline",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("hours_key", sa.String(length=16), nullable=False),
        sa.Column("offline_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "account_id", "hours_key", name=op.f("pk_report_offline")),
    )
    op.create_table(
        "report_spans",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("part", sa.String(length=8), nullable=False),
        sa.Column("after", sa.Date(), nullable=True),
        sa.Column("built", sa.BigInteger(), nullable=True),
        sa.Column("days", sa.Integer(), nullable=True),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("month", "part", name=op.f("pk_report_spans")),
    )
    op.create_table(
        "report_monthly",
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_monthly")),
    )
    op.create_index(op.f("ix_report_monthly_month"), "report_monthly", ["month"], unique=False)
    op.create_table(
        "report_monthly_offline",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("hours_key", sa.String(length=16), nullable=False),
        sa.Column("offline_us", sa.BigInteger(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "month", "account_id", "hours_key", name=op.f("pk_report_monthly_offline")
        ),
    )
    op.create_index(
        "ix_call_members_caller_rating",
        "call_members",
        ["call_id"],
        unique=False,
        postgresql_include=["rating"],
        postgresql_where=sa.text(RATED_CALLER),
        sqlite_where=sa.text(RATED_CALLER),
    )
    op.create_index(
        "ix_presence_intervals_ended_at", "presence_intervals", ["ended_at"], unique=False
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in TRIGGERS_SQLITE if sqlite else TRIGGERS_POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in DROP_SQLITE if sqlite else DROP_POSTGRESQL:
        op.execute(statement)
    op.drop_index("ix_presence_intervals_ended_at", table_name="presence_intervals")
    op.drop_index("ix_call_members_caller_rating", table_name="call_members")
    op.drop_table("report_monthly_offline")
    op.drop_index(op.f("ix_report_monthly_month"), table_name="report_monthly")
    op.drop_table("report_monthly")
    op.drop_table("report_spans")
    op.drop_table("report_offline")
    op.drop_table("report_daily_declines")
    op.drop_index(op.f("ix_report_daily_day"), table_name="report_daily")
    op.drop_table("report_daily")
    op.drop_table("report_days")
