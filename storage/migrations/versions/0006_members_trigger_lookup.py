"""PostgreSQL: the call-members report trigger looks its call up by primary key (issue 7).

0003's ``report_members_touched`` found the touched call's request time with
``id = ANY(ids)`` over a text array. Under load on a fresh database (bench/signaling,
``auto_explain``), 10,029 of its 11,660 runs scanned ``calls`` sequentially: the plan cached
by each pooled connection's session was made while the table was small, and a call request
inserts one member row per staff member on duty, each firing the trigger. Here each of the (at
most two) call ids is looked up by itself with ``id = <call id>``, the primary key's own
comparison. SQLite's triggers (0003) already look up ``id = NEW.call_id``: unchanged.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 23:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

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
     UPDATE report_days SET version = version + 1
      WHERE part = 'calls' AND day IN (SELECT report_local_day(x) FROM unnest(at) AS x);
     UPDATE report_hours SET version = version + 1
      WHERE hour IN (SELECT report_hour(x) FROM unnest(at) AS x);
     RETURN NULL;
   END $$"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(MEMBERS_TOUCHED)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        from importlib import import_module

        before = import_module("storage.migrations.versions.0003_report_hours")
        op.execute(before.MEMBERS_TOUCHED)
