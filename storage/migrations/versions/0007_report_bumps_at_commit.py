"""PostgreSQL: the report's validity bumps run at commit, once per day and hour (issue 7).

Every transaction that writes a call or its members bumps ``report_days`` and
``report_hours`` (0002, 0003): an UPDATE of today's row and of the current hour's row, which
every call request, answer and hang-up of the node share. It bumped them once per row written:
a request with 10 staff on duty inserts the call and 11 member rows, 24 UPDATEs of the same two
rows (a new row version each). And a row lock is held until the transaction ends, so a
request held both rows from its first INSERT through its member, event and deadline INSERTs
to its COMMIT, each a round trip through the server's event loop, and any other writer of the
same hour waited for it (tests/integration/oversight/test_report_bumps.py).

Here both triggers are constraint triggers, ``DEFERRABLE INITIALLY DEFERRED``: they fire at
COMMIT, so the rows are locked only for the commit itself. And ``report_bump`` skips a day or
hour this transaction has bumped already (a transaction-local setting per day and hour,
``tongban.report_day_<yyyymmdd>`` / ``tongban.report_hour_<n>``): one bump per transaction is
what the rebuild's check needs (oversight/rollup.py: a change committed after a rebuild read
the version leaves the version past what it built). Measured with bench/signaling on
PostgreSQL (5,000 staff): PostgreSQL's CPU per request and cancel 3.2-3.4 ms before, 2.1-2.2 ms
after at 100/s; at 150/s p50 9-90 ms before, 5.5-6.1 ms after (BENCHMARKS.md).

SQLite has one writer at a time: its triggers (0002, 0003) are unchanged. The presence
trigger is unchanged too: presence changes are a clerk's, not every call's.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 01:00:00
"""

from __future__ import annotations

from importlib import import_module

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_0002 = import_module("storage.migrations.versions.0002_report_rollup")
_0006 = import_module("storage.migrations.versions.0006_members_trigger_lookup")
_0003 = import_module("storage.migrations.versions.0003_report_hours")

BUMP = """CREATE FUNCTION report_bump(days date[], hours bigint[]) RETURNS void
   LANGUAGE plpgsql AS $$
   DECLARE d date; h bigint; done text;
   BEGIN
     FOREACH d IN ARRAY coalesce(days, '{}'::date[]) LOOP
       done := 'tongban.report_day_' || to_char(d, 'YYYYMMDD');
       CONTINUE WHEN current_setting(done, true) = '1';
       PERFORM set_config(done, '1', true);
       UPDATE report_days SET version = version + 1 WHERE part = 'calls' AND day = d;
     END LOOP;
     FOREACH h IN ARRAY coalesce(hours, '{}'::bigint[]) LOOP
       done := 'tongban.report_hour_' || h;
       CONTINUE WHEN current_setting(done, true) = '1';
       PERFORM set_config(done, '1', true);
       UPDATE report_hours SET version = version + 1 WHERE hour = h;
     END LOOP;
   END $$"""

CALLS_TOUCHED = """CREATE OR REPLACE FUNCTION report_calls_touched() RETURNS trigger
   LANGUAGE plpgsql AS $$
   DECLARE at timestamptz[];
   BEGIN
     IF TG_OP <> 'INSERT' THEN at := at || OLD.requested_at; END IF;
     IF TG_OP <> 'DELETE' THEN at := at || NEW.requested_at; END IF;
     PERFORM report_bump(ARRAY(SELECT report_local_day(x) FROM unnest(at) AS x),
                         ARRAY(SELECT report_hour(x) FROM unnest(at) AS x));
     RETURN NULL;
   END $$"""

MEMBERS_TOUCHED = """CREATE OR REPLACE FUNCTION report_members_touched() RETURNS trigger
   LANGUAGE plpgsql AS $$
   DECLARE at timestamptz[];
   BEGIN
     IF TG_OP <> 'INSERT' THEN
       at := at || (SELECT requested_at FROM calls WHERE id = OLD.call_id);
     END IF;
     IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.call_id <> OLD.call_id) THEN
       at := at || (SELECT requested_at FROM calls WHERE id = NEW.call_id);
     END IF;
     at := ARRAY(SELECT x FROM unnest(at) AS x WHERE x IS NOT NULL);
     PERFORM report_bump(ARRAY(SELECT report_local_day(x) FROM unnest(at) AS x),
                         ARRAY(SELECT report_hour(x) FROM unnest(at) AS x));
     RETURN NULL;
   END $$"""


def _triggers(deferred: bool) -> list[str]:
    kind = "CONSTRAINT TRIGGER" if deferred else "TRIGGER"
    when = " DEFERRABLE INITIALLY DEFERRED" if deferred else ""
    return [
        "DROP TRIGGER report_calls_touched ON calls",
        f"""CREATE {kind} report_calls_touched
            AFTER INSERT OR DELETE OR UPDATE OF {_0002.CALL_COLUMNS} ON calls{when}
            FOR EACH ROW EXECUTE FUNCTION report_calls_touched()""",
        "DROP TRIGGER report_members_touched ON call_members",
        f"""CREATE {kind} report_members_touched
            AFTER INSERT OR DELETE OR UPDATE OF {_0002.MEMBER_COLUMNS} ON call_members{when}
            FOR EACH ROW EXECUTE FUNCTION report_members_touched()""",
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in [BUMP, CALLS_TOUCHED, MEMBERS_TOUCHED, *_triggers(deferred=True)]:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in [
            *_triggers(deferred=False),
            _0003.CALLS_TOUCHED,
            _0006.MEMBERS_TOUCHED,
            "DROP FUNCTION report_bump(date[], bigint[])",
        ]:
            op.execute(statement)
