"""The SQL schema of every durable record (SQLAlchemy Core).

One module so that the Alembic migrations, the repositories and a reader who wants to know
what is stored all look in the same place. Times are stored as timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (naive text) and PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


TS = UtcDateTime()


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)


# --- directory: who and where ---------------------------------------------------------------

agencies = sa.Table(
    "agencies",
    metadata,
    _id(),
    sa.Column("region_code", sa.String(12), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),  # province | city | county
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("agencies.id"), nullable=True),
)

halls = sa.Table(
    "halls",
    metadata,
    _id(),
    sa.Column("agency_id", sa.Integer, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
)

windows = sa.Table(
    "windows",
    metadata,
    _id(),
    sa.Column("hall_id", sa.Integer, sa.ForeignKey("halls.id"), nullable=False),
    sa.Column("code", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # applicant | home | both
)

matters = sa.Table(
    "matters",
    metadata,
    _id(),
    sa.Column("code", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("department", sa.String(200), nullable=False, server_default=""),
)

# Which matters a home-locality window owns, for which home regions.
window_matters = sa.Table(
    "window_matters",
    metadata,
    sa.Column("window_id", sa.Integer, sa.ForeignKey("windows.id"), primary_key=True),
    sa.Column("matter_id", sa.Integer, sa.ForeignKey("matters.id"), primary_key=True),
    sa.Column("region_code", sa.String(12), primary_key=True),
)
# routing a case: which window owns this matter in this region (the key starts with the window)
sa.Index(
    "ix_window_matters_matter_region", window_matters.c.matter_id, window_matters.c.region_code
)

# Weekly opening periods of a hall. ``days``: "workday" (every working day on the Chinese
# calendar, adjusted weekend days included), "restday", or "everyday".
office_hours = sa.Table(
    "office_hours",
    metadata,
    _id(),
    sa.Column("hall_id", sa.Integer, sa.ForeignKey("halls.id"), nullable=False, index=True),
    sa.Column("days", sa.String(16), nullable=False),
    sa.Column("opens", sa.String(5), nullable=False),  # "09:00"
    sa.Column("closes", sa.String(5), nullable=False),  # "12:00"; "24:00" allowed
)

# Dates loaded by the admin: a year's schedule before chinese-calendar knows it, or a
# correction. They win over the package.
calendar_days = sa.Table(
    "calendar_days",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("is_workday", sa.Boolean, nullable=False),
    sa.Column("name", sa.String(60), nullable=False, server_default=""),
)

accounts = sa.Table(
    "accounts",
    metadata,
    _id(),
    sa.Column("username", sa.String(60), nullable=False, unique=True),
    sa.Column("display_name", sa.String(60), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("agency_id", sa.Integer, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("mobile", sa.String(20), nullable=False, server_default=""),
    sa.Column("department", sa.String(100), nullable=False, server_default=""),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", TS, nullable=True),
    sa.Column("password_changed_at", TS, nullable=True),
    sa.Column("created_at", TS, nullable=False),
)

account_windows = sa.Table(
    "account_windows",
    metadata,
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("window_id", sa.Integer, sa.ForeignKey("windows.id"), primary_key=True),
)
# who is assigned to a window (the key starts with the account)
sa.Index("ix_account_windows_window_id", account_windows.c.window_id)

# A supervisor marks staff absent (leave, training, another duty): not on duty then.
absences = sa.Table(
    "absences",
    metadata,
    _id(),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("starts_at", TS, nullable=False),
    sa.Column("ends_at", TS, nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
)

# Only the SHA-256 of the cookie token is stored.
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("last_seen_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("revoked_at", TS, nullable=True),
    sa.Column("revoked_reason", sa.String(32), nullable=True),
    sa.Column("source", sa.String(64), nullable=False, server_default=""),
)

# Append-only: database triggers refuse UPDATE and DELETE (see the first migration).
audit_log = sa.Table(
    "audit_log",
    metadata,
    _id(),
    sa.Column("at", TS, nullable=False, index=True),
    sa.Column("actor_id", sa.Integer, nullable=True),
    sa.Column("actor", sa.String(60), nullable=False),
    sa.Column("action", sa.String(60), nullable=False, index=True),
    sa.Column("target", sa.String(200), nullable=False, server_default=""),
    sa.Column("result", sa.String(32), nullable=False),
    sa.Column("source", sa.String(64), nullable=False, server_default=""),
    sa.Column("detail", sa.JSON, nullable=True),
)

# --- cases --------------------------------------------------------------------------------

cases = sa.Table(
    "cases",
    metadata,
    _id(),
    sa.Column("case_no", sa.String(40), nullable=False, unique=True),
    sa.Column("matter_id", sa.Integer, sa.ForeignKey("matters.id"), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=False),  # home locality
    sa.Column("applicant_name", sa.String(60), nullable=False),
    sa.Column("applicant_id_number", sa.String(18), nullable=False),
    sa.Column("applicant_phone", sa.String(20), nullable=False, server_default=""),
    sa.Column("applicant_window_id", sa.Integer, sa.ForeignKey("windows.id"), nullable=False),
    sa.Column("home_window_id", sa.Integer, sa.ForeignKey("windows.id"), nullable=True),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

# --- calls --------------------------------------------------------------------------------

calls = sa.Table(
    "calls",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False, index=True),
    sa.Column("caller_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("caller_window_id", sa.Integer, sa.ForeignKey("windows.id"), nullable=False),
    sa.Column("window_id", sa.Integer, sa.ForeignKey("windows.id"), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("requested_at", TS, nullable=False, index=True),
    sa.Column("overdue_at", TS, nullable=True),
    sa.Column("answered_at", TS, nullable=True),
    sa.Column("ended_at", TS, nullable=True),
    sa.Column("end_reason", sa.String(32), nullable=True),
    sa.Column("answered_by", sa.Integer, sa.ForeignKey("accounts.id"), nullable=True),
    sa.Column("answered_late", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("in_office_hours", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("unnecessary", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("unnecessary_by", sa.Integer, sa.ForeignKey("accounts.id"), nullable=True),
    sa.Column("media_node", sa.String(100), nullable=True),
)

call_events = sa.Table(
    "call_events",
    metadata,
    _id(),
    sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id"), nullable=False, index=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=True),
    sa.Column("detail", sa.JSON, nullable=True),
)

# Who was rung (on duty when the call started), who joined; declines and ratings.
call_members = sa.Table(
    "call_members",
    metadata,
    sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id"), primary_key=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),  # caller | callee | expert
    sa.Column("on_duty", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("declined_at", TS, nullable=True),
    sa.Column("decline_reason", sa.String(500), nullable=True),
    sa.Column("invited_at", TS, nullable=True),
    sa.Column("joined_at", TS, nullable=True),
    sa.Column("left_at", TS, nullable=True),
    sa.Column("rating", sa.Integer, nullable=True),
    sa.Column("rating_comment", sa.String(500), nullable=True),
    sa.Column("rated_at", TS, nullable=True),
)

# Durable ring deadlines: each fires once, after a restart too.
deadlines = sa.Table(
    "deadlines",
    metadata,
    _id(),
    sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # overdue | limit | grace
    sa.Column("due_at", TS, nullable=False, index=True),
    sa.Column("fired_at", TS, nullable=True),
    sa.UniqueConstraint("call_id", "kind", name="uq_deadlines_call_kind"),
)

presence_intervals = sa.Table(
    "presence_intervals",
    metadata,
    _id(),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),  # online | away | busy | offline
    sa.Column("started_at", TS, nullable=False),
    sa.Column("ended_at", TS, nullable=True),
)

# --- oversight ----------------------------------------------------------------------------

misses = sa.Table(
    "misses",
    metadata,
    _id(),
    sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id"), nullable=False),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("window_id", sa.Integer, sa.ForeignKey("windows.id"), nullable=False),
    sa.Column("agency_id", sa.Integer, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("occurred_at", TS, nullable=False),
    sa.Column("month", sa.String(7), nullable=False, index=True),  # Asia/Shanghai "YYYY-MM"
    sa.Column("status", sa.String(16), nullable=False),  # pending | confirmed | excused
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("call_id", "account_id", name="uq_misses_call_account"),
)

miss_verdicts = sa.Table(
    "miss_verdicts",
    metadata,
    _id(),
    sa.Column("miss_id", sa.Integer, sa.ForeignKey("misses.id"), nullable=False, index=True),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("by_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("at", TS, nullable=False),
)

escalations = sa.Table(
    "escalations",
    metadata,
    _id(),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("month", sa.String(7), nullable=False),
    sa.Column("from_agency_id", sa.Integer, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("to_agency_id", sa.Integer, sa.ForeignKey("agencies.id"), nullable=False),
    sa.Column("confirmed_count", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # active | withdrawn
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("account_id", "month", name="uq_escalations_account_month"),
)

# --- sms ----------------------------------------------------------------------------------

sms_outbox = sa.Table(
    "sms_outbox",
    metadata,
    _id(),
    sa.Column("dedupe_key", sa.String(120), nullable=False, unique=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=True),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("template", sa.String(32), nullable=False),  # reminder | escalation
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", TS, nullable=False, index=True),
    sa.Column("claimed_by", sa.String(64), nullable=True),
    sa.Column("claimed_until", TS, nullable=True),
    sa.Column("biz_id", sa.String(64), nullable=True),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("sent_at", TS, nullable=True),
    sa.Column("delivered_at", TS, nullable=True),
)

sms_receipts = sa.Table(
    "sms_receipts",
    metadata,
    sa.Column("biz_id", sa.String(64), primary_key=True),
    sa.Column("phone", sa.String(20), primary_key=True),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("err_code", sa.String(64), nullable=True),
    sa.Column("received_at", TS, nullable=False),
    sa.Column("out_id", sa.String(64), nullable=True),
)

# --- recordings ---------------------------------------------------------------------------

recordings = sa.Table(
    "recordings",
    metadata,
    _id(),
    sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id"), nullable=False, unique=True),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),  # recording | ready | failed | deleted
    sa.Column("blob_key", sa.String(200), nullable=True),
    sa.Column("started_at", TS, nullable=False, index=True),
    sa.Column("ended_at", TS, nullable=True),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("size_bytes", sa.BigInteger, nullable=True),
    sa.Column("codecs", sa.String(100), nullable=True),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("tracks", sa.JSON, nullable=True),
    sa.Column("expires_at", TS, nullable=False, index=True),
    sa.Column("legal_hold", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("legal_hold_reason", sa.String(500), nullable=True),
    sa.Column("deleted_at", TS, nullable=True),
    sa.Column("error", sa.String(500), nullable=True),
)

# Callers' ratings for the monthly report (R13): an index-only scan of the few rated rows
# instead of the whole table.
sa.Index(
    "ix_call_members_caller_rating",
    call_members.c.call_id,
    postgresql_include=["rating"],
    postgresql_where=sa.and_(call_members.c.role == "caller", call_members.c.rating.is_not(None)),
    sqlite_where=sa.and_(call_members.c.role == "caller", call_members.c.rating.is_not(None)),
)

# One live call per caller (migration 0004): call:request checks it before it writes, this
# settles two requests of the same clerk arriving together.
# signaling.callstate.LIVE_STATES, as literals (the queries that use the index say the same)
LIVE_CALL = calls.c.state.in_(
    [sa.literal_column(f"'{state}'") for state in ("ringing", "overdue", "answered")]
)
sa.Index(
    "uq_calls_caller_live",
    calls.c.caller_id,
    unique=True,
    postgresql_where=LIVE_CALL,
    sqlite_where=LIVE_CALL,
)

# The monthly report reads the presence of the unfinished day live: the intervals still open
# or ended since (R2), without scanning months of them.
sa.Index("ix_presence_intervals_ended_at", presence_intervals.c.ended_at)

# --- monthly report rollup (issue 7) --------------------------------------------------------
# Derived data, rebuilt from the tables above at will (so no foreign keys): the report reads
# finished Asia/Shanghai days from here and aggregates only the unfinished rest live.

# One row per day and part ("calls" or "offline") rolled up. Triggers (migration 0002) add 1
# to ``version`` whenever a source row of that day changes (a rating, a decline, an
# ``unnecessary`` mark, a presence interval); the day is current while ``built_version``
# equals ``version``.
report_days = sa.Table(
    "report_days",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("part", sa.String(8), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("built_version", sa.Integer, nullable=True),
    sa.Column("built_at", TS, nullable=True),
)

# Per day and window (``account_id`` NULL: all the window's calls) and per day, window and
# staff member (the calls that rang them, the ones they answered, marked unnecessary).
report_daily = sa.Table(
    "report_daily",
    metadata,
    _id(),
    sa.Column("day", sa.Date, nullable=False, index=True),
    sa.Column("window_id", sa.Integer, nullable=False),
    sa.Column("account_id", sa.Integer, nullable=True),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("answered", sa.Integer, nullable=False),
    sa.Column("answered_late", sa.Integer, nullable=False),
    sa.Column("unnecessary", sa.Integer, nullable=False),
    sa.Column("rating_sum", sa.Integer, nullable=False),
    sa.Column("ratings", sa.Integer, nullable=False),
    # whole seconds to answer, comma-separated, one per call (exact percentiles); the window
    # row holds only calls answered by no one in particular, its staff rows the rest
    sa.Column("waits", sa.Text, nullable=True),
)

report_daily_declines = sa.Table(
    "report_daily_declines",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("window_id", sa.Integer, primary_key=True),
    sa.Column("account_id", sa.Integer, primary_key=True),
    sa.Column("reason", sa.String(500), primary_key=True),
    sa.Column("declines", sa.Integer, nullable=False),
)

# Office-hours time offline (R2) per day and staff member, absences not deducted (the report
# computes staff with absences live). ``hours_key`` fingerprints the month's opening
# intervals the day was computed against.
report_offline = sa.Table(
    "report_offline",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("account_id", sa.Integer, primary_key=True),
    sa.Column("hours_key", sa.String(16), primary_key=True),
    sa.Column("offline_us", sa.BigInteger, nullable=False),
)

# A month's rolled-up days summed once (the report of a finished month then reads ~11,000
# rows instead of ~300,000), valid while the days it sums are still built at the versions
# summed in ``report_spans.built`` (every rebuild of a day raises its built version).
report_spans = sa.Table(
    "report_spans",
    metadata,
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("part", sa.String(8), primary_key=True),
    sa.Column("after", sa.Date, nullable=True),  # the days [first of the month, after)
    sa.Column("built", sa.BigInteger, nullable=True),
    sa.Column("days", sa.Integer, nullable=True),
    sa.Column("built_at", TS, nullable=True),
)

report_monthly = sa.Table(
    "report_monthly",
    metadata,
    _id(),
    sa.Column("month", sa.String(7), nullable=False, index=True),
    sa.Column("window_id", sa.Integer, nullable=False),
    sa.Column("account_id", sa.Integer, nullable=True),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("answered", sa.Integer, nullable=False),
    sa.Column("answered_late", sa.Integer, nullable=False),
    sa.Column("unnecessary", sa.Integer, nullable=False),
    sa.Column("rating_sum", sa.Integer, nullable=False),
    sa.Column("ratings", sa.Integer, nullable=False),
    # histogram of whole seconds to answer, "values;counts" (window rows: all their calls)
    sa.Column("waits", sa.Text, nullable=True),
    sa.Column("declines", sa.Text, nullable=True),  # JSON object: reason -> declines
)

report_monthly_offline = sa.Table(
    "report_monthly_offline",
    metadata,
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("account_id", sa.Integer, primary_key=True),
    sa.Column("hours_key", sa.String(16), primary_key=True),
    sa.Column("offline_us", sa.BigInteger, nullable=False),
    sa.Column("days", sa.Integer, nullable=False),
)

# --- hourly rollup of the current day (issue 7, migration 0003) ----------------------------
# The finished hours of the unfinished day, so a report of a running month aggregates only
# the hour in progress from the raw rows. ``hour``: whole hours since the Unix epoch (UTC).
# The triggers that bump ``report_days`` bump ``report_hours`` the same way.
report_hours = sa.Table(
    "report_hours",
    metadata,
    sa.Column("hour", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("built_version", sa.Integer, nullable=True),
    sa.Column("built_at", TS, nullable=True),
)

# As ``report_daily`` / ``report_daily_declines``, per hour instead of per day.
report_hourly = sa.Table(
    "report_hourly",
    metadata,
    _id(),
    sa.Column("hour", sa.BigInteger, nullable=False, index=True),
    sa.Column("window_id", sa.Integer, nullable=False),
    sa.Column("account_id", sa.Integer, nullable=True),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("answered", sa.Integer, nullable=False),
    sa.Column("answered_late", sa.Integer, nullable=False),
    sa.Column("unnecessary", sa.Integer, nullable=False),
    sa.Column("rating_sum", sa.Integer, nullable=False),
    sa.Column("ratings", sa.Integer, nullable=False),
    sa.Column("waits", sa.Text, nullable=True),
)

report_hourly_declines = sa.Table(
    "report_hourly_declines",
    metadata,
    sa.Column("hour", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("window_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("reason", sa.String(500), primary_key=True),
    sa.Column("declines", sa.Integer, nullable=False),
)

# The current day's rolled-up hours summed once per month (as ``report_monthly``), valid while
# ``report_today_spans`` lists the hours the report wants and the sum of their built versions
# is still ``built``. The report reads it in one statement with the month's sum.
report_today = sa.Table(
    "report_today",
    metadata,
    _id(),
    sa.Column("month", sa.String(7), nullable=False, index=True),
    sa.Column("window_id", sa.Integer, nullable=False),
    sa.Column("account_id", sa.Integer, nullable=True),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("answered", sa.Integer, nullable=False),
    sa.Column("answered_late", sa.Integer, nullable=False),
    sa.Column("unnecessary", sa.Integer, nullable=False),
    sa.Column("rating_sum", sa.Integer, nullable=False),
    sa.Column("ratings", sa.Integer, nullable=False),
    sa.Column("waits", sa.Text, nullable=True),
    sa.Column("declines", sa.Text, nullable=True),
)

report_today_spans = sa.Table(
    "report_today_spans",
    metadata,
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("hours", sa.Text, nullable=True),  # comma-separated hour numbers
    sa.Column("built", sa.BigInteger, nullable=True),
    sa.Column("built_at", TS, nullable=True),
)
