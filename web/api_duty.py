"""Supervisors mark staff absent (leave, training, another duty): absent staff are not on
duty, so they are not rung, not reminded and not charged with misses (DESIGN.md)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from aiohttp import web
from pydantic import Field

from storage import schema as s
from tongban.errors import Forbidden, InvalidInput, NotFound
from tongban.validation import Payload
from web.http import audit_by, int_param, ok, read_body, require_role
from web.state import SERVICES


class AbsenceBody(Payload):
    username: str = Field(min_length=1, max_length=60)
    starts_at: str = Field(min_length=10, max_length=40)
    ends_at: str = Field(min_length=10, max_length=40)
    reason: str = Field(min_length=1, max_length=200)


def _moment(text: str, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field} 不是有效时间", code="invalid_time") from None
    if value.tzinfo is None:
        raise InvalidInput(f"{field} 需要带时区，如 2026-12-01T09:00:00+08:00", code="invalid_time")
    return value


async def add_absence(request: web.Request) -> web.Response:
    session = await require_role(request, "supervisor")
    body = await read_body(request, AbsenceBody)
    starts, ends = _moment(body.starts_at, "starts_at"), _moment(body.ends_at, "ends_at")
    if ends <= starts:
        raise InvalidInput("结束时间必须晚于开始时间", code="invalid_time")
    services = request.app[SERVICES]
    snap = await services.directory.snapshot()
    staff = snap.account_by_username(body.username)
    if staff is None:
        raise NotFound(f"没有账号 {body.username}", code="account_not_found")
    if staff.agency_id not in snap.subtree(session.account.agency_id):
        raise Forbidden("该人员不在您的管辖范围内", code="forbidden")
    async with services.db.begin() as conn:
        absence_id = await conn.scalar(
            sa.insert(s.absences)
            .values(
                account_id=staff.id,
                starts_at=starts,
                ends_at=ends,
                reason=body.reason,
                created_by=session.account.id,
            )
            .returning(s.absences.c.id)
        )
        await audit_by(
            conn,
            request,
            session,
            "duty.absence",
            staff.username,
            {"from": starts.isoformat(), "to": ends.isoformat(), "reason": body.reason},
        )
    return ok({"id": absence_id}, status=201)


async def list_absences(request: web.Request) -> web.Response:
    session = await require_role(request, "supervisor")
    services = request.app[SERVICES]
    snap = await services.directory.snapshot()
    scope = snap.subtree(session.account.agency_id)
    ids = [a.id for a in snap.accounts.values() if a.agency_id in scope]
    async with services.db.connect() as conn:
        rows = list(
            await conn.execute(
                sa.select(s.absences)
                .where(s.absences.c.account_id.in_(ids or [-1]))
                .where(s.absences.c.ends_at > services.clock.now())
                .where(s.absences.c.ends_at > s.absences.c.starts_at)  # not cancelled
                .order_by(s.absences.c.starts_at)
            )
        )
    return ok(
        {
            "absences": [
                {
                    "id": r.id,
                    "username": snap.accounts[r.account_id].username,
                    "display_name": snap.accounts[r.account_id].display_name,
                    "starts_at": r.starts_at.isoformat(),
                    "ends_at": r.ends_at.isoformat(),
                    "reason": r.reason,
                }
                for r in rows
            ]
        }
    )


async def end_absence(request: web.Request) -> web.Response:
    """Ends an absence now, or cancels one not yet begun (the record stays: it explains past
    duty)."""
    session = await require_role(request, "supervisor")
    services = request.app[SERVICES]
    snap = await services.directory.snapshot()
    absence_id = int_param(request, "absence_id")
    now = services.clock.now()
    async with services.db.begin() as conn:
        row = (
            await conn.execute(sa.select(s.absences).where(s.absences.c.id == absence_id))
        ).first()
        if row is None:
            raise NotFound("没有这条缺勤记录", code="absence_not_found")
        staff = snap.account(row.account_id)
        if staff.agency_id not in snap.subtree(session.account.agency_id):
            raise Forbidden("该人员不在您的管辖范围内", code="forbidden")
        await conn.execute(
            sa.update(s.absences)
            .where(s.absences.c.id == absence_id)
            .values(ends_at=max(min(row.ends_at, now), row.starts_at))
        )
        await audit_by(
            conn, request, session, "duty.absence_end", staff.username, {"absence": absence_id}
        )
    return ok()


def setup(app: web.Application) -> None:
    app.router.add_post("/api/absences", add_absence)
    app.router.add_get("/api/absences", list_absences)
    app.router.add_post("/api/absences/{absence_id}/end", end_absence)
