"""The provincial admin's directory pages: windows and the matters they own, office hours,
the working-day calendar, and the audit log (read only: nothing in the app edits it)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

import sqlalchemy as sa
from aiohttp import web
from pydantic import Field

from directory.office_hours import Period
from directory.store import load_calendar_days
from storage import schema as s
from tongban.errors import InvalidInput, NotFound
from tongban.validation import Payload
from web.http import audit_by, int_param, ok, read_body, require_role
from web.state import SERVICES


class PeriodBody(Payload):
    days: Literal["workday", "restday", "everyday"]
    opens: str = Field(min_length=4, max_length=5)
    closes: str = Field(min_length=4, max_length=5)


class OfficeHoursBody(Payload):
    periods: list[PeriodBody] = Field(max_length=12)


class OwnershipBody(Payload):
    matter_code: str = Field(min_length=1, max_length=40)
    region_code: str = Field(min_length=6, max_length=12)


class WindowMattersBody(Payload):
    owns: list[OwnershipBody] = Field(max_length=500)


class CalendarDayBody(Payload):
    day: str = Field(min_length=10, max_length=10)
    workday: bool
    name: str = Field(default="", max_length=60)


class CalendarBody(Payload):
    days: list[CalendarDayBody] = Field(min_length=1, max_length=400)


async def directory(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    services = request.app[SERVICES]
    snap = await services.directory.snapshot()
    owners: dict[int, list[dict[str, str]]] = {}
    matters_by_id = {m.id: m for m in snap.matters.values()}
    for (matter_id, region), window_id in snap.owners.items():
        owners.setdefault(window_id, []).append(
            {"matter_code": matters_by_id[matter_id].code, "region_code": region}
        )
    halls = []
    for hall in sorted(snap.halls.values(), key=lambda h: h.id):
        halls.append(
            {
                "id": hall.id,
                "name": hall.name,
                "agency": snap.agencies[hall.agency_id].name,
                "office_hours": [
                    {"days": p.days, "hours": p.label()} for p in snap.periods.get(hall.id, ())
                ],
                "windows": [
                    {
                        "id": w.id,
                        "code": w.code,
                        "name": w.name,
                        "kind": w.kind,
                        "owns": sorted(
                            owners.get(w.id, []), key=lambda o: (o["matter_code"], o["region_code"])
                        ),
                        "staff": [a.username for a in snap.staff.get(w.id, ())],
                    }
                    for w in sorted(snap.windows.values(), key=lambda w: w.code)
                    if w.hall_id == hall.id
                ],
            }
        )
    today = services.clock.now().date()
    return ok(
        {
            "halls": halls,
            "matters": [
                {"code": m.code, "name": m.name, "department": m.department}
                for m in sorted(snap.matters.values(), key=lambda m: m.code)
            ],
            "calendar": {
                "loaded_years": sorted(snap.calendar.loaded_years()),
                "warnings": snap.calendar.warnings(today),
            },
        }
    )


async def set_office_hours(request: web.Request) -> web.Response:
    session = await require_role(request, "admin")
    body = await read_body(request, OfficeHoursBody)
    periods = [Period.parse(p.days, p.opens, p.closes) for p in body.periods]
    hall_id = int_param(request, "hall_id")
    services = request.app[SERVICES]
    async with services.db.begin() as conn:
        if await conn.scalar(sa.select(s.halls.c.id).where(s.halls.c.id == hall_id)) is None:
            raise NotFound("没有这个大厅", code="hall_not_found")
        await conn.execute(sa.delete(s.office_hours).where(s.office_hours.c.hall_id == hall_id))
        for p, raw in zip(periods, body.periods, strict=True):
            await conn.execute(
                sa.insert(s.office_hours).values(
                    hall_id=hall_id, days=p.days, opens=raw.opens, closes=raw.closes
                )
            )
        await audit_by(
            conn,
            request,
            session,
            "directory.office_hours",
            f"hall:{hall_id}",
            {"periods": [f"{p.days} {p.label()}" for p in periods]},
        )
    await services.directory.reload()
    return ok()


async def set_window_matters(request: web.Request) -> web.Response:
    session = await require_role(request, "admin")
    body = await read_body(request, WindowMattersBody)
    window_id = int_param(request, "window_id")
    services = request.app[SERVICES]
    snap = await services.directory.snapshot()
    window = snap.window(window_id)
    if not window.home_side and body.owns:
        raise InvalidInput("只有属地窗口可以负责事项", code="not_home_window")
    rows: list[dict[str, Any]] = []
    for item in body.owns:
        matter = snap.matter(item.matter_code)
        if snap.agency_by_region(item.region_code) is None:
            raise InvalidInput(f"未知的区划代码 {item.region_code}", code="unknown_region")
        owner = snap.owners.get((matter.id, item.region_code))
        if owner is not None and owner != window_id:
            raise InvalidInput(
                f"{item.matter_code} 在 {item.region_code} 已由窗口 {snap.window(owner).code} 负责",
                code="already_owned",
            )
        rows.append(
            {"window_id": window_id, "matter_id": matter.id, "region_code": item.region_code}
        )
    async with services.db.begin() as conn:
        await conn.execute(
            sa.delete(s.window_matters).where(s.window_matters.c.window_id == window_id)
        )
        if rows:
            await conn.execute(sa.insert(s.window_matters), rows)
        await audit_by(
            conn,
            request,
            session,
            "directory.window_matters",
            window.code,
            {"owns": [f"{i.matter_code}@{i.region_code}" for i in body.owns]},
        )
    await services.directory.reload()
    return ok()


async def load_calendar(request: web.Request) -> web.Response:
    """A year's schedule the package does not know yet: holidays and adjusted working days."""
    session = await require_role(request, "admin")
    body = await read_body(request, CalendarBody)
    days: dict[date, tuple[bool, str]] = {}
    for item in body.days:
        try:
            days[date.fromisoformat(item.day)] = (item.workday, item.name)
        except ValueError:
            raise InvalidInput(f"不是有效日期：{item.day}", code="invalid_date") from None
    services = request.app[SERVICES]
    async with services.db.begin() as conn:
        await load_calendar_days(conn, days)
        await audit_by(
            conn,
            request,
            session,
            "calendar.load",
            "",
            {"days": len(days), "years": sorted({d.year for d in days})},
        )
    snap = await services.directory.reload()
    return ok(
        {
            "loaded_years": sorted(snap.calendar.loaded_years()),
            "warnings": snap.calendar.warnings(services.clock.now().date()),
        }
    )


async def audit_log(request: web.Request) -> web.Response:
    """Admins see everything; auditors see actions on recordings (R7) and logins."""
    session = await require_role(request, "admin", "auditor")
    services = request.app[SERVICES]
    query = sa.select(s.audit_log).order_by(s.audit_log.c.id.desc())
    action = request.query.get("action", "")[:60]
    if action:
        query = query.where(s.audit_log.c.action.like(action.replace("*", "%")))
    if session.account.role == "auditor":
        query = query.where(s.audit_log.c.action.like("recording.%"))
    try:
        limit = min(max(int(request.query.get("limit", "200")), 1), 1000)
    except ValueError:
        raise InvalidInput("limit 必须是整数", code="invalid_input") from None
    async with services.db.connect() as conn:
        rows = list(await conn.execute(query.limit(limit)))
    return ok(
        {
            "entries": [
                {
                    "id": r.id,
                    "at": r.at.isoformat(),
                    "actor": r.actor,
                    "action": r.action,
                    "target": r.target,
                    "result": r.result,
                    "source": r.source,
                    "detail": r.detail,
                }
                for r in rows
            ]
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/api/admin/directory", directory)
    app.router.add_put("/api/admin/halls/{hall_id}/office-hours", set_office_hours)
    app.router.add_put("/api/admin/windows/{window_id}/matters", set_window_matters)
    app.router.add_post("/api/admin/calendar", load_calendar)
    app.router.add_get("/api/admin/audit", audit_log)
