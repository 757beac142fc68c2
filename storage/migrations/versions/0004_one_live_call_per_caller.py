"""One live call per caller, enforced by the database (issue 7).

``call:request`` refuses a second request while the caller's call is live
(``call_already_active``), but it reads that before it writes, outside the write transaction
(on SQLite the writes queue for the single writer, and the read need not), so two requests
from the same clerk arriving together (a double click, two tabs) could both pass and both
ring. A partial unique index on the live calls settles it: the second INSERT fails and the
request answers ``call_already_active`` with the call that won.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 19:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LIVE = sa.text("state IN ('ringing', 'overdue', 'answered')")  # signaling.callstate.LIVE_STATES


def upgrade() -> None:
    op.create_index(
        "uq_calls_caller_live",
        "calls",
        ["caller_id"],
        unique=True,
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_calls_caller_live", table_name="calls")
