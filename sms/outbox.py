"""The durable SMS outbox: a message is a row written in the same transaction as the event
that causes it (a call going overdue, an escalation), so neither exists without the other.

The worker (``sms/worker.py``) sends what is due; ``dedupe_key`` makes enqueueing idempotent,
so a deadline that fires twice, or a retried transaction, still sends one message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import schema as s

TEMPLATES = ("reminder", "escalation")


async def enqueue(
    conn: AsyncConnection,
    *,
    dedupe_key: str,
    phone: str,
    template: str,
    params: dict[str, Any],
    now: datetime,
    account_id: int | None = None,
) -> bool:
    """Add a message unless one with the same ``dedupe_key`` exists; True if added."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown SMS template {template!r}")
    values = {
        "dedupe_key": dedupe_key,
        "account_id": account_id,
        "phone": phone,
        "template": template,
        "params": params,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    dialect = conn.dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(s.sms_outbox)
    result = await conn.execute(
        insert.values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
    return bool(result.rowcount)


async def pending_count(conn: AsyncConnection) -> int:
    return int(
        await conn.scalar(
            sa.select(sa.func.count())
            .select_from(s.sms_outbox)
            .where(s.sms_outbox.c.state == "pending")
        )
        or 0
    )
