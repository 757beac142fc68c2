"""R5 in the database: a supervisor verifies a miss, the month is recounted, and the one
escalation per staff member and month is created, re-activated, recounted or withdrawn.

Everything a verification causes (the verdict, its history, the audit records, the escalation
and its SMS in the outbox) commits in one transaction; the in-app notice follows the commit.
Verifications of one staff member's month are serialised by locking that month's misses
first, so two supervisors confirming at once see each other's verdicts and cannot both create,
or both miss, the escalation; the unique (account, month) constraint is the last guard.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.model import Account, Agency
from directory.service import DirectoryService
from directory.snapshot import DirectorySnapshot
from oversight.notify import EscalationEvent, EscalationNotifier, NoNotifier
from oversight.rules import (
    STATUSES,
    VERDICTS,
    Action,
    escalation_action,
    escalation_target,
    standing,
)
from sms.outbox import enqueue
from storage import schema as s
from storage.database import Database, audit
from tongban.clock import Clock
from tongban.errors import Forbidden, InvalidInput, NotFound
from tongban.masking import mask_phone

log = logging.getLogger(__name__)
REASON_MAX = 500


@dataclass(frozen=True, slots=True)
class _Settled:
    """An escalation after a recount, and the notice to send once the transaction commits."""

    escalation: dict[str, Any] | None
    event: EscalationEvent | None


class OversightService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        directory: DirectoryService,
        *,
        miss_limit: int,
        notifier: EscalationNotifier | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._directory = directory
        self.miss_limit = miss_limit
        self.notifier: EscalationNotifier = notifier or NoNotifier()

    # --- verification -------------------------------------------------------------------

    async def verify(
        self, *, miss_id: int, verdict: str, reason: str, supervisor: Account, source: str
    ) -> dict[str, Any]:
        """Record a supervisor's verdict (a later one may change it) and settle the month."""
        if supervisor.role != "supervisor":
            raise Forbidden("只有监督员可以核实未接记录", code="forbidden")
        if verdict not in VERDICTS:
            raise InvalidInput("核实结论须为 confirmed 或 excused", code="invalid_verdict")
        reason = reason.strip()
        if not reason:
            raise InvalidInput("请填写核实理由", code="reason_required")
        if len(reason) > REASON_MAX:
            raise InvalidInput(f"理由不能超过 {REASON_MAX} 字", code="reason_too_long")
        snap = await self._directory.snapshot()
        now = self._clock.now()
        async with self._db.begin() as conn:
            miss = (await conn.execute(sa.select(s.misses).where(s.misses.c.id == miss_id))).first()
            if miss is None:
                raise NotFound("没有这条未接记录", code="miss_not_found")
            if miss.agency_id not in snap.subtree(supervisor.agency_id):
                raise Forbidden("这条未接记录不在您的管辖范围内", code="forbidden")
            await _lock_staff_month(conn, miss.account_id, miss.month)
            previous = await conn.scalar(
                sa.select(s.misses.c.status).where(s.misses.c.id == miss_id)
            )
            await conn.execute(
                sa.update(s.misses)
                .where(s.misses.c.id == miss_id)
                .values(status=verdict, updated_at=now)
            )
            await conn.execute(
                sa.insert(s.miss_verdicts).values(
                    miss_id=miss_id, verdict=verdict, reason=reason, by_id=supervisor.id, at=now
                )
            )
            await audit(
                conn,
                at=now,
                actor=supervisor.username,
                actor_id=supervisor.id,
                action="miss.verify",
                target=f"miss:{miss_id}",
                result=verdict,
                source=source,
                detail={
                    "previous": previous,
                    "reason": reason,
                    "staff_id": miss.account_id,
                    "month": miss.month,
                    "call_id": miss.call_id,
                },
            )
            confirmed = await _confirmed(conn, miss.account_id, miss.month)
            settled = await self._settle(
                conn,
                snap,
                account_id=miss.account_id,
                month=miss.month,
                agency_id=miss.agency_id,
                confirmed=confirmed,
                now=now,
                actor=supervisor,
                source=source,
            )
        if settled.event is not None:
            try:
                await self.notifier.escalation_changed(settled.event)
            except Exception:  # the escalation and its SMS are committed; the notice is extra
                log.exception("escalation notice failed for %s", settled.event.escalation_id)
        return {
            "miss": {"id": miss_id, "status": verdict, "previous_status": previous},
            "staff_id": miss.account_id,
            "month": miss.month,
            "confirmed": confirmed,
            "limit": self.miss_limit,
            "standing": standing(confirmed, self.miss_limit).value,
            "at_risk": standing(confirmed, self.miss_limit).value == "at_risk",
            "escalation": settled.escalation,
        }

    async def _settle(
        self,
        conn: AsyncConnection,
        snap: DirectorySnapshot,
        *,
        account_id: int,
        month: str,
        agency_id: int,
        confirmed: int,
        now: datetime,
        actor: Account,
        source: str,
    ) -> _Settled:
        """Apply the escalation rule to the fresh count; at most two passes, the second only
        if another writer inserted the escalation between our read and our insert."""
        for _attempt in range(2):
            row = await _escalation(conn, account_id, month)
            action = escalation_action(
                confirmed,
                self.miss_limit,
                row.state if row else None,
                row.confirmed_count if row else None,
            )
            if action is Action.CREATE:
                parent = snap.parent(agency_id)
                to_agency = escalation_target(agency_id, parent.id if parent else None)
                escalation_id = await _insert_escalation(
                    conn,
                    account_id=account_id,
                    month=month,
                    from_agency_id=agency_id,
                    to_agency_id=to_agency,
                    confirmed=confirmed,
                    now=now,
                )
                if escalation_id is None:
                    continue  # someone else created it: decide again against their row
                return await self._announce(
                    conn, snap, escalation_id, "escalation.create", now, actor, source
                )
            if row is None:
                return _Settled(None, None)
            if action is Action.REACTIVATE:
                changed = await _set_state(conn, row.id, "withdrawn", "active", confirmed, now)
                if changed:
                    return await self._announce(
                        conn, snap, row.id, "escalation.reactivate", now, actor, source
                    )
            elif action is Action.WITHDRAW:
                changed = await _set_state(conn, row.id, "active", "withdrawn", confirmed, now)
                if changed:
                    await audit(
                        conn,
                        at=now,
                        actor=actor.username,
                        actor_id=actor.id,
                        action="escalation.withdraw",
                        target=f"escalation:{row.id}",
                        result="withdrawn",
                        source=source,
                        detail={"staff_id": account_id, "month": month, "confirmed": confirmed},
                    )
                    view = await self._escalation_view(conn, snap, row.id)
                    event = await self._event(conn, snap, row.id, "withdrawn")
                    return _Settled(view, event)
            elif action is Action.RECOUNT:
                await conn.execute(
                    sa.update(s.escalations)
                    .where(s.escalations.c.id == row.id)
                    .values(confirmed_count=confirmed, updated_at=now)
                )
                await audit(
                    conn,
                    at=now,
                    actor=actor.username,
                    actor_id=actor.id,
                    action="escalation.recount",
                    target=f"escalation:{row.id}",
                    result="active",
                    source=source,
                    detail={"confirmed": confirmed, "before": row.confirmed_count},
                )
            return _Settled(await self._escalation_view(conn, snap, row.id), None)
        raise RuntimeError("escalation kept changing under a locked month")  # pragma: no cover

    async def _announce(
        self,
        conn: AsyncConnection,
        snap: DirectorySnapshot,
        escalation_id: int,
        action: str,
        now: datetime,
        actor: Account,
        source: str,
    ) -> _Settled:
        """Audit a created or re-activated escalation and queue one SMS to each supervisor of
        the agency it is addressed to; the n-th activation gets its own dedupe keys."""
        event = await self._event(conn, snap, escalation_id, "new")
        await audit(
            conn,
            at=now,
            actor=actor.username,
            actor_id=actor.id,
            action=action,
            target=f"escalation:{escalation_id}",
            result="active",
            source=source,
            detail={
                "staff_id": event.account_id,
                "month": event.month,
                "confirmed": event.confirmed_count,
                "to_agency_id": event.to_agency_id,
                "supervisors": list(event.supervisor_ids),
            },
        )
        n = int(
            await conn.scalar(
                sa.select(sa.func.count())
                .select_from(s.audit_log)
                .where(
                    s.audit_log.c.action.in_(("escalation.create", "escalation.reactivate")),
                    s.audit_log.c.target == f"escalation:{escalation_id}",
                )
            )
            or 1
        )
        supervisors = await _supervisors(conn, event.to_agency_id)
        if not supervisors:
            log.warning(
                "escalation %s: agency %s has no supervisor", escalation_id, event.to_agency_id
            )
        for sup in supervisors:
            if not sup.mobile:
                log.warning("escalation %s: supervisor %s has no mobile", escalation_id, sup.id)
                continue
            await enqueue(
                conn,
                dedupe_key=f"escalation:{escalation_id}:{sup.id}:{n}",
                phone=sup.mobile,
                template="escalation",
                params={
                    "name": event.display_name,
                    "agency": event.from_agency_name,
                    "month": event.month,
                    "count": str(event.confirmed_count),
                },
                now=now,
                account_id=sup.id,
            )
        return _Settled(await self._escalation_view(conn, snap, escalation_id), event)

    async def _event(
        self, conn: AsyncConnection, snap: DirectorySnapshot, escalation_id: int, kind: str
    ) -> EscalationEvent:
        row = (
            await conn.execute(
                sa.select(s.escalations, s.accounts.c.username, s.accounts.c.display_name)
                .join(s.accounts, s.accounts.c.id == s.escalations.c.account_id)
                .where(s.escalations.c.id == escalation_id)
            )
        ).one()
        supervisors = await _supervisors(conn, row.to_agency_id)
        return EscalationEvent(
            kind=kind,
            escalation_id=row.id,
            month=row.month,
            account_id=row.account_id,
            username=row.username,
            display_name=row.display_name,
            from_agency_id=row.from_agency_id,
            from_agency_name=_agency_name(snap, row.from_agency_id),
            to_agency_id=row.to_agency_id,
            confirmed_count=row.confirmed_count,
            supervisor_ids=tuple(sup.id for sup in supervisors),
        )

    async def _escalation_view(
        self, conn: AsyncConnection, snap: DirectorySnapshot, escalation_id: int
    ) -> dict[str, Any]:
        row = (
            await conn.execute(_escalations_query().where(s.escalations.c.id == escalation_id))
        ).one()
        return escalation_view(row, snap)

    # --- reading ------------------------------------------------------------------------

    async def list_misses(
        self, *, account: Account, month: str, status: str | None = None
    ) -> dict[str, Any]:
        """Supervisors see their agency subtree, staff their own misses, nobody else any."""
        if status is not None and status not in STATUSES:
            raise InvalidInput("status 须为 pending、confirmed 或 excused", code="invalid_status")
        snap = await self._directory.snapshot()
        m = s.misses
        where: list[Any] = [m.c.month == month]
        if account.role == "supervisor":
            where.append(m.c.agency_id.in_(sorted(snap.subtree(account.agency_id))))
        elif account.role == "staff":
            where.append(m.c.account_id == account.id)
        else:
            raise Forbidden("无权查看未接记录", code="forbidden")
        if status is not None:
            where.append(m.c.status == status)
        selected = sa.select(m.c.id).where(*where)
        staff_ids = sa.select(m.c.account_id).where(*where).distinct()
        async with self._db.connect() as conn:
            rows = list(
                await conn.execute(
                    sa.select(
                        m,
                        s.accounts.c.username,
                        s.accounts.c.display_name,
                        s.accounts.c.mobile,
                        s.calls.c.requested_at,
                        s.cases.c.case_no,
                    )
                    .join(s.accounts, s.accounts.c.id == m.c.account_id)
                    .join(s.calls, s.calls.c.id == m.c.call_id)
                    .join(s.cases, s.cases.c.id == s.calls.c.case_id)
                    .where(*where)
                    .order_by(m.c.occurred_at, m.c.id)
                )
            )
            by = s.accounts.alias("by")
            history: dict[int, list[dict[str, Any]]] = {}
            for v in await conn.execute(
                sa.select(s.miss_verdicts, by.c.username, by.c.display_name)
                .join(by, by.c.id == s.miss_verdicts.c.by_id)
                .where(s.miss_verdicts.c.miss_id.in_(selected))
                .order_by(s.miss_verdicts.c.at, s.miss_verdicts.c.id)
            ):
                history.setdefault(v.miss_id, []).append(
                    {
                        "verdict": v.verdict,
                        "reason": v.reason,
                        "by": {"username": v.username, "display_name": v.display_name},
                        "at": v.at.isoformat(),
                    }
                )
            counts = {
                r.account_id: int(r.confirmed)
                for r in await conn.execute(
                    sa.select(m.c.account_id, sa.func.count().label("confirmed"))
                    .where(
                        m.c.month == month,
                        m.c.status == "confirmed",
                        m.c.account_id.in_(staff_ids),
                    )
                    .group_by(m.c.account_id)
                )
            }
            escalated = {
                r.account_id: r.state
                for r in await conn.execute(
                    sa.select(s.escalations.c.account_id, s.escalations.c.state).where(
                        s.escalations.c.month == month,
                        s.escalations.c.account_id.in_(staff_ids),
                    )
                )
            }
        staff: dict[int, dict[str, Any]] = {}
        misses = []
        for r in rows:
            person = staff.get(r.account_id)
            if person is None:
                confirmed = counts.get(r.account_id, 0)
                person = staff[r.account_id] = {
                    "id": r.account_id,
                    "username": r.username,
                    "display_name": r.display_name,
                    "mobile": mask_phone(r.mobile) if r.mobile else "",
                    "confirmed": confirmed,
                    "limit": self.miss_limit,
                    "standing": standing(confirmed, self.miss_limit).value,
                    "at_risk": standing(confirmed, self.miss_limit).value == "at_risk",
                    "escalation": escalated.get(r.account_id),
                }
            misses.append(
                {
                    "id": r.id,
                    "call_id": r.call_id,
                    "case_no": r.case_no,
                    "call_requested_at": r.requested_at.isoformat(),
                    "occurred_at": r.occurred_at.isoformat(),
                    "month": r.month,
                    "status": r.status,
                    "staff": {k: person[k] for k in ("id", "username", "display_name", "mobile")},
                    "staff_confirmed": person["confirmed"],
                    "staff_at_risk": person["at_risk"],
                    "window": _window_view(snap, r.window_id),
                    "agency": _agency_view(snap, r.agency_id),
                    "verdicts": history.get(r.id, []),
                }
            )
        return {
            "month": month,
            "limit": self.miss_limit,
            "misses": misses,
            "staff": sorted(staff.values(), key=lambda p: (-p["confirmed"], p["username"])),
        }

    async def list_escalations(self, *, account: Account, month: str | None) -> dict[str, Any]:
        """Escalations addressed to the user's agency or any agency below it."""
        if account.role != "supervisor":
            raise Forbidden("只有监督员可以查看移交记录", code="forbidden")
        snap = await self._directory.snapshot()
        query = _escalations_query().where(
            s.escalations.c.to_agency_id.in_(sorted(snap.subtree(account.agency_id)))
        )
        if month is not None:
            query = query.where(s.escalations.c.month == month)
        async with self._db.connect() as conn:
            rows = list(
                await conn.execute(query.order_by(s.escalations.c.month.desc(), s.escalations.c.id))
            )
        return {"month": month, "escalations": [escalation_view(r, snap) for r in rows]}


# --- SQL helpers ------------------------------------------------------------------------------


async def _lock_staff_month(conn: AsyncConnection, account_id: int, month: str) -> None:
    """Serialise verifications of one staff member's month.

    PostgreSQL: lock that month's misses in id order. SQLite has one writer at a time and
    takes the lock at a transaction's first write, so write first (a no-op update) and every
    read after it sees all verifications committed before ours.
    """
    where = (s.misses.c.account_id == account_id, s.misses.c.month == month)
    if conn.dialect.name == "sqlite":
        await conn.execute(
            sa.update(s.misses).where(*where).values(updated_at=s.misses.c.updated_at)
        )
    else:
        await conn.execute(
            sa.select(s.misses.c.id).where(*where).order_by(s.misses.c.id).with_for_update()
        )


async def _confirmed(conn: AsyncConnection, account_id: int, month: str) -> int:
    return int(
        await conn.scalar(
            sa.select(sa.func.count())
            .select_from(s.misses)
            .where(
                s.misses.c.account_id == account_id,
                s.misses.c.month == month,
                s.misses.c.status == "confirmed",
            )
        )
        or 0
    )


async def _escalation(conn: AsyncConnection, account_id: int, month: str) -> Any:
    return (
        await conn.execute(
            sa.select(s.escalations).where(
                s.escalations.c.account_id == account_id, s.escalations.c.month == month
            )
        )
    ).first()


async def _insert_escalation(
    conn: AsyncConnection,
    *,
    account_id: int,
    month: str,
    from_agency_id: int,
    to_agency_id: int,
    confirmed: int,
    now: datetime,
) -> int | None:
    """Insert unless (account, month) exists; the new id, or None if it already existed."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    result = await conn.execute(
        dialect_insert(s.escalations)
        .values(
            account_id=account_id,
            month=month,
            from_agency_id=from_agency_id,
            to_agency_id=to_agency_id,
            confirmed_count=confirmed,
            state="active",
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["account_id", "month"])
        .returning(s.escalations.c.id)
    )
    found = result.scalar()
    return int(found) if found is not None else None


async def _set_state(
    conn: AsyncConnection, escalation_id: int, was: str, becomes: str, confirmed: int, now: datetime
) -> bool:
    """A conditional update: only the writer that sees the old state makes the change."""
    result = await conn.execute(
        sa.update(s.escalations)
        .where(s.escalations.c.id == escalation_id, s.escalations.c.state == was)
        .values(state=becomes, confirmed_count=confirmed, updated_at=now)
    )
    return bool(result.rowcount)


async def _supervisors(conn: AsyncConnection, agency_id: int) -> list[Any]:
    return list(
        await conn.execute(
            sa.select(s.accounts.c.id, s.accounts.c.username, s.accounts.c.mobile)
            .where(
                s.accounts.c.role == "supervisor",
                s.accounts.c.agency_id == agency_id,
                s.accounts.c.disabled.is_(False),
            )
            .order_by(s.accounts.c.id)
        )
    )


def _escalations_query() -> sa.Select[Any]:
    return sa.select(
        s.escalations,
        s.accounts.c.username,
        s.accounts.c.display_name,
        s.accounts.c.mobile,
    ).join(s.accounts, s.accounts.c.id == s.escalations.c.account_id)


# --- views ------------------------------------------------------------------------------------


def escalation_view(row: Any, snap: DirectorySnapshot) -> dict[str, Any]:
    return {
        "id": row.id,
        "month": row.month,
        "staff": {
            "id": row.account_id,
            "username": row.username,
            "display_name": row.display_name,
            "mobile": mask_phone(row.mobile) if row.mobile else "",
        },
        "from_agency": _agency_view(snap, row.from_agency_id),
        "to_agency": _agency_view(snap, row.to_agency_id),
        "confirmed_count": row.confirmed_count,
        "state": row.state,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _agency_view(snap: DirectorySnapshot, agency_id: int) -> dict[str, Any]:
    agency: Agency | None = snap.agencies.get(agency_id)
    if agency is None:
        return {"id": agency_id, "region_code": None, "name": None}
    return {"id": agency.id, "region_code": agency.region_code, "name": agency.name}


def _agency_name(snap: DirectorySnapshot, agency_id: int) -> str:
    agency = snap.agencies.get(agency_id)
    return agency.name if agency else str(agency_id)


def _window_view(snap: DirectorySnapshot, window_id: int) -> dict[str, Any]:
    window = snap.windows.get(window_id)
    if window is None:
        return {"id": window_id, "code": None, "name": None, "hall": None}
    hall = snap.halls.get(window.hall_id)
    return {
        "id": window.id,
        "code": window.code,
        "name": window.name,
        "hall": hall.name if hall else None,
    }
