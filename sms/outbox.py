"""The durable SMS outbox: a message is a row written in the same transaction as the event
that causes it (a call going overdue, an escalation), so neither exists without the other.

The worker (``sms/worker.py``) sends what is due; ``dedupe_key`` makes enqueueing idempotent,
so a deadline that fires twice, or a retried transaction, still sends one message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
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


# --- the worker's side ------------------------------------------------------------------------
#
# States: pending -> sending (claimed by one node until claimed_until) -> sent | failed; a
# retry goes back to pending with a later next_attempt_at. Every change of state is a
# conditional UPDATE, so that two workers, on one node or several, never both own an entry.

STATES = ("pending", "sending", "sent", "failed")
OUTCOME_UNKNOWN = "sms_outcome_unknown"


@dataclass(frozen=True)
class Entry:
    id: int
    dedupe_key: str
    account_id: int | None
    phone: str
    template: str
    params: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: datetime
    claimed_by: str | None
    claimed_until: datetime | None
    biz_id: str | None
    request_id: str | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None

    @property
    def out_id(self) -> str:
        """The ``OutId`` sent with the message; receipts carry it back."""
        return str(self.id)


_COLUMNS = tuple(s.sms_outbox.c[name] for name in Entry.__dataclass_fields__)


def _entry(row: sa.Row[Any]) -> Entry:
    values = dict(row._mapping)
    values["params"] = dict(values["params"] or {})
    return Entry(**values)


def _is_pg(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


async def claim_due(
    conn: AsyncConnection, *, node_id: str, now: datetime, until: datetime, limit: int
) -> list[Entry]:
    """Claim up to ``limit`` due entries for ``node_id``, oldest first.

    PostgreSQL: the candidates are selected ``FOR UPDATE SKIP LOCKED`` (concurrent claimers
    take different rows without waiting), then updated by id in the same transaction. Two
    statements on purpose: inside ``UPDATE ... WHERE id IN (SELECT ... LIMIT n SKIP LOCKED)``
    the planner may rescan the subquery and claim far more than ``n`` rows. The UPDATE
    re-checks ``state = 'pending'`` anyway, so even without the locks no row goes twice.
    SQLite: one statement, which takes the write lock before it reads (a read-then-write
    transaction could fail with SQLITE_BUSY instead of waiting); writers are serialised.
    """
    o = s.sms_outbox
    candidates = (
        sa.select(o.c.id)
        .where(o.c.state == "pending", o.c.next_attempt_at <= now)
        .order_by(o.c.next_attempt_at, o.c.id)
        .limit(limit)
    )
    return await _claim(conn, candidates, node_id=node_id, until=until)


async def claim_companions(
    conn: AsyncConnection, *, phones: list[str], node_id: str, until: datetime
) -> list[Entry]:
    """Claim every other pending reminder to these phones, due or not: they go out in the
    same message. Rows another worker holds are skipped rather than waited for (no deadlock
    between two claimers that each hold one reminder to the same phone)."""
    if not phones:
        return []
    o = s.sms_outbox
    candidates = sa.select(o.c.id).where(
        o.c.state == "pending", o.c.template == "reminder", o.c.phone.in_(phones)
    )
    return await _claim(conn, candidates, node_id=node_id, until=until)


async def _claim(
    conn: AsyncConnection, candidates: sa.Select[Any], *, node_id: str, until: datetime
) -> list[Entry]:
    o = s.sms_outbox
    which: sa.ColumnElement[bool]
    if _is_pg(conn):
        ids = list(await conn.scalars(candidates.with_for_update(skip_locked=True)))
        if not ids:
            return []
        which = o.c.id.in_(ids)
    else:
        which = o.c.id.in_(candidates)
    result = await conn.execute(
        sa.update(o)
        .where(which, o.c.state == "pending")
        .values(
            state="sending",
            claimed_by=node_id,
            claimed_until=until,
            attempts=o.c.attempts + 1,
        )
        .returning(*_COLUMNS)
    )
    return sorted((_entry(row) for row in result), key=lambda e: e.id)


async def postpone_recently_reminded(
    conn: AsyncConnection, *, now: datetime, window: timedelta
) -> int:
    """Hold due reminders to a phone that got a reminder less than ``window`` ago (or is
    getting one now) until the window is over; then one message covers them all.

    Aliyun limits messages per number, and five messages in a minute about five calls help
    nobody; the first reminder is never held back."""
    o = s.sms_outbox
    due_phones = (
        sa.select(o.c.phone)
        .where(o.c.state == "pending", o.c.template == "reminder", o.c.next_attempt_at <= now)
        .distinct()
    )
    recent = await conn.execute(
        sa.select(o.c.phone, sa.func.max(o.c.sent_at), sa.func.count())
        .where(
            o.c.template == "reminder",
            o.c.phone.in_(due_phones),
            sa.or_(
                o.c.state == "sending",
                sa.and_(o.c.state == "sent", o.c.sent_at > now - window),
            ),
        )
        .group_by(o.c.phone)
    )
    held = 0
    for phone, last_sent, _ in recent:
        last = s.TS.process_result_value(last_sent, conn.dialect) if last_sent else None
        resume = (last + window) if last is not None and last + window > now else now + window
        result = await conn.execute(
            sa.update(o)
            .where(
                o.c.state == "pending",
                o.c.template == "reminder",
                o.c.phone == phone,
                o.c.next_attempt_at <= now,
            )
            .values(next_attempt_at=resume)
        )
        held += result.rowcount
    return held


async def mark_sent(
    conn: AsyncConnection,
    ids: list[int],
    *,
    biz_id: str,
    request_id: str,
    now: datetime,
) -> None:
    """The provider took the message. Unconditional on the claim: even if this node's claim
    ran out and another node gave the entry up meanwhile, it was sent, and that is the truth
    to record."""
    o = s.sms_outbox
    await conn.execute(
        sa.update(o)
        .where(o.c.id.in_(ids), o.c.state != "sent")
        .values(
            state="sent",
            biz_id=biz_id[:64],
            request_id=request_id[:64],
            sent_at=now,
            claimed_by=None,
            claimed_until=None,
            last_error=None,
        )
    )
    # a receipt that raced ahead of this update
    receipts = await conn.execute(
        sa.select(s.sms_receipts).where(s.sms_receipts.c.biz_id == biz_id[:64])
    )
    for r in receipts:
        await _apply_receipt(
            conn,
            biz_id=r.biz_id,
            phone=r.phone,
            out_id=r.out_id,
            success=r.success,
            err_code=r.err_code,
            at=r.received_at,
        )


async def release(
    conn: AsyncConnection, ids: list[int], *, node_id: str, next_attempt_at: datetime, error: str
) -> None:
    """Back to pending for a later attempt (only entries this node still holds)."""
    o = s.sms_outbox
    await conn.execute(
        sa.update(o)
        .where(o.c.id.in_(ids), o.c.state == "sending", o.c.claimed_by == node_id)
        .values(
            state="pending",
            next_attempt_at=next_attempt_at,
            claimed_by=None,
            claimed_until=None,
            last_error=error[:500],
        )
    )


async def fail(conn: AsyncConnection, ids: list[int], *, node_id: str, error: str) -> None:
    """Given up: an administrator must look (``GET /api/admin/sms``)."""
    o = s.sms_outbox
    await conn.execute(
        sa.update(o)
        .where(o.c.id.in_(ids), o.c.state == "sending", o.c.claimed_by == node_id)
        .values(state="failed", claimed_by=None, claimed_until=None, last_error=error[:500])
    )


async def already_sent(conn: AsyncConnection, entries: list[Entry]) -> dict[int, str]:
    """Entries among these that a receipt shows the provider has already taken (an earlier
    attempt that timed out after all), with the receipt's biz id: they must not go again."""
    if not entries:
        return {}
    by_out_id = {e.out_id: e for e in entries}
    rows = await conn.execute(
        sa.select(s.sms_receipts.c.out_id, s.sms_receipts.c.biz_id, s.sms_receipts.c.phone).where(
            s.sms_receipts.c.out_id.in_(list(by_out_id))
        )
    )
    found: dict[int, str] = {}
    for out_id, biz_id, phone in rows:
        entry = by_out_id.get(out_id)
        if entry is not None and entry.phone == phone:
            found[entry.id] = biz_id
    for entry in entries:
        if entry.delivered_at is not None and entry.id not in found:
            found[entry.id] = entry.biz_id or ""
    return found


async def recover_stale(conn: AsyncConnection, *, now: datetime) -> tuple[list[int], list[int]]:
    """Entries left in ``sending`` past their claim: the node holding them stopped while
    the provider call was in flight, so the message may or may not have gone out.

    With a receipt it did: sent. Without one it is failed with ``sms_outcome_unknown`` for an
    administrator, not sent again: a claim is taken right before the provider call, so a
    stale claim almost always means the request reached Aliyun, and a duplicate reminder
    (SendSms is not idempotent) is worse than an administrator's look at a rare case.
    Returns (sent ids, failed ids)."""
    o = s.sms_outbox
    rows = await conn.execute(
        sa.select(*_COLUMNS).where(o.c.state == "sending", o.c.claimed_until < now)
    )
    stale = [_entry(row) for row in rows]
    if not stale:
        return [], []
    receipts = await already_sent(conn, stale)
    sent: list[int] = []
    failed: list[int] = []
    for entry in stale:
        guard = sa.and_(o.c.id == entry.id, o.c.state == "sending", o.c.claimed_until < now)
        if entry.id in receipts:
            result = await conn.execute(
                sa.update(o)
                .where(guard)
                .values(
                    state="sent",
                    biz_id=receipts[entry.id] or entry.biz_id,
                    sent_at=entry.claimed_until,
                    claimed_by=None,
                    claimed_until=None,
                )
            )
            if result.rowcount:
                sent.append(entry.id)
        else:
            result = await conn.execute(
                sa.update(o)
                .where(guard)
                .values(
                    state="failed",
                    claimed_by=None,
                    claimed_until=None,
                    last_error=(
                        f"{OUTCOME_UNKNOWN}: node {entry.claimed_by} stopped while sending; "
                        "not resent to avoid a duplicate"
                    )[:500],
                )
            )
            if result.rowcount:
                failed.append(entry.id)
    return sent, failed


async def record_receipt(
    conn: AsyncConnection,
    *,
    biz_id: str,
    phone: str,
    success: bool,
    err_code: str | None,
    out_id: str | None,
    now: datetime,
    reported_at: datetime | None = None,
) -> bool:
    """Store one delivery receipt (idempotent by biz id + phone) and mark the entries it
    concerns delivered. True if it was new."""
    insert = (postgresql.insert if _is_pg(conn) else sqlite.insert)(s.sms_receipts)
    result = await conn.execute(
        insert.values(
            biz_id=biz_id[:64],
            phone=phone[:20],
            success=success,
            err_code=(err_code or None) and err_code[:64],
            received_at=now,
            out_id=(out_id or None) and out_id[:64],
        ).on_conflict_do_nothing(index_elements=["biz_id", "phone"])
    )
    if not result.rowcount:
        return False
    await _apply_receipt(
        conn,
        biz_id=biz_id[:64],
        phone=phone[:20],
        out_id=out_id,
        success=success,
        err_code=err_code,
        at=reported_at or now,
    )
    return True


async def _apply_receipt(
    conn: AsyncConnection,
    *,
    biz_id: str,
    phone: str,
    out_id: str | None,
    success: bool,
    err_code: str | None,
    at: datetime,
) -> None:
    o = s.sms_outbox
    which: list[sa.ColumnElement[bool]] = [o.c.biz_id == biz_id]
    if out_id and out_id.isdigit():
        which.append(o.c.id == int(out_id))
    values: dict[str, Any] = (
        {"delivered_at": at}
        if success
        else {"last_error": f"delivery failed: {err_code or 'unknown'}"[:500]}
    )
    await conn.execute(
        sa.update(o)
        .where(o.c.phone == phone, o.c.delivered_at.is_(None), sa.or_(*which))
        .values(**values)
    )


async def list_entries(conn: AsyncConnection, *, state: str, limit: int = 200) -> list[Entry]:
    o = s.sms_outbox
    rows = await conn.execute(
        sa.select(*_COLUMNS).where(o.c.state == state).order_by(o.c.id.desc()).limit(limit)
    )
    return [_entry(row) for row in rows]


async def count_in_state(conn: AsyncConnection, state: str) -> int:
    return int(
        await conn.scalar(
            sa.select(sa.func.count())
            .select_from(s.sms_outbox)
            .where(s.sms_outbox.c.state == state)
        )
        or 0
    )


async def next_due(conn: AsyncConnection) -> datetime | None:
    """When the earliest pending entry is due."""
    o = s.sms_outbox
    value = await conn.scalar(
        sa.select(sa.func.min(o.c.next_attempt_at)).where(o.c.state == "pending")
    )
    if value is None:
        return None
    return s.TS.process_result_value(value, conn.dialect)


async def get(conn: AsyncConnection, entry_id: int) -> Entry | None:
    row = (await conn.execute(sa.select(*_COLUMNS).where(s.sms_outbox.c.id == entry_id))).first()
    return _entry(row) if row is not None else None
