"""Indexes for routing a call request (issue 7).

``call:request`` looks up which window owns the case's matter in its region, and who is
assigned to that window (for their absences). Both tables' primary keys start with the other
column, so each lookup scanned the whole table: with 5,000 staff the request's one query took
0.4 ms of SQLite's time, on the event loop's thread (storage/database.py ``direct``); with
these indexes it takes a small fraction of that (bench/signaling).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 23:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_window_matters_matter_region", "window_matters", ["matter_id", "region_code"]
    )
    op.create_index("ix_account_windows_window_id", "account_windows", ["window_id"])


def downgrade() -> None:
    op.drop_index("ix_account_windows_window_id", table_name="account_windows")
    op.drop_index("ix_window_matters_matter_region", table_name="window_matters")
