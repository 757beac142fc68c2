"""Oversight over HTTP: misses and their verification (R5), escalations, monthly reports (R12).

``setup(app)`` registers the routes, the notifier registry (``ESCALATION_NOTIFIERS``) and a
cleanup context that builds the service once the shared services exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

from aiohttp import web
from pydantic import Field

from oversight import export
from oversight.notify import Notifiers
from oversight.report import monthly_report, refresh_rollup
from oversight.rules import month_of, parse_month
from oversight.service import OversightService
from sms.http import SMS_WORKER
from tongban.errors import InvalidInput
from tongban.periodic import Periodic
from tongban.validation import Payload
from web.http import current_session, int_param, ok, read_body, require_role, source_of
from web.state import SERVICES

OVERSIGHT = web.AppKey("oversight", OversightService)
ROLLUP = web.AppKey("report_rollup", Periodic)
ESCALATION_NOTIFIERS = web.AppKey("escalation_notifiers", Notifiers)
REPORT_ROLES = ("supervisor", "auditor")


class VerifyBody(Payload):
    verdict: Literal["confirmed", "excused"]
    reason: str = Field(min_length=1, max_length=500)


def _month(request: web.Request) -> str:
    """The ``month`` query parameter; the current local month when it is absent."""
    raw = request.query.get("month")
    if raw is None:
        return month_of(request.app[SERVICES].clock.now())
    return parse_month(raw)


async def list_misses(request: web.Request) -> web.Response:
    session = await current_session(request)
    month = _month(request)
    status = request.query.get("status") or None
    view = await request.app[OVERSIGHT].list_misses(
        account=session.account, month=month, status=status
    )
    return ok(view)


async def verify_miss(request: web.Request) -> web.Response:
    session = await require_role(request, "supervisor")
    body = await read_body(request, VerifyBody)
    result = await request.app[OVERSIGHT].verify(
        miss_id=int_param(request, "miss_id"),
        verdict=body.verdict,
        reason=body.reason,
        supervisor=session.account,
        source=source_of(request),
    )
    worker = request.app.get(SMS_WORKER)
    if worker is not None and result.get("escalation"):
        worker.notify()  # an escalation SMS may have been committed to the outbox
    return ok(result)


async def list_escalations(request: web.Request) -> web.Response:
    session = await current_session(request)
    raw = request.query.get("month")
    month = parse_month(raw) if raw is not None else None
    return ok(await request.app[OVERSIGHT].list_escalations(account=session.account, month=month))


async def report(request: web.Request) -> web.StreamResponse:
    session = await require_role(request, *REPORT_ROLES)
    month = _month(request)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv", "xlsx"):
        raise InvalidInput("format 须为 json、csv 或 xlsx", code="invalid_format")
    services = request.app[SERVICES]
    data = await monthly_report(
        services.db,
        await services.directory.snapshot(),
        agency_id=session.account.agency_id,
        month=month,
        now=services.clock.now(),
    )
    if fmt == "json":
        return ok(data)
    if fmt == "csv":
        body = await asyncio.to_thread(export.to_csv, data)
        content_type = "text/csv; charset=utf-8"
    else:
        body = await asyncio.to_thread(export.to_xlsx, data)
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    filename = f"tongban-report-{month}-{data['jurisdiction']['region_code']}.{fmt}"
    return web.Response(
        body=body,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


def escalation_notifiers(app: web.Application) -> Notifiers:
    """Where signaling adds its Socket.IO notifier, from its own ``setup(app)``, whichever
    part is set up first: ``escalation_notifiers(app).add(notifier)``."""
    found = app.get(ESCALATION_NOTIFIERS)
    if found is None:
        found = app[ESCALATION_NOTIFIERS] = Notifiers()
    return found


def setup(app: web.Application) -> None:
    notifiers = escalation_notifiers(app)

    async def oversight_ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        app[OVERSIGHT] = OversightService(
            services.db,
            services.clock,
            services.directory,
            miss_limit=services.settings.miss_limit,
            notifier=notifiers,
        )

        async def roll_up() -> None:
            snap = await services.directory.snapshot()
            await refresh_rollup(services.db, snap, services.clock.now())

        # finished days rolled up ahead of any report (the first province report of a month
        # nobody rolled up would otherwise wait for it); hourly, so a day is ready soon after
        # local midnight and late changes are folded in
        roller = Periodic(roll_up, name="report rollup", first_after=120.0, every=3600.0)
        roller.start()
        app[ROLLUP] = roller
        try:
            yield
        finally:
            await roller.close()

    app.cleanup_ctx.append(oversight_ctx)
    app.router.add_get("/api/misses", list_misses)
    app.router.add_post("/api/misses/{miss_id}/verify", verify_miss)
    app.router.add_get("/api/escalations", list_escalations)
    app.router.add_get("/api/reports/monthly", report)
