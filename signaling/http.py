"""Calls over HTTP: one call with its transitions, the user's live calls, the live board."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web

from directory import store
from signaling import callstate as cs
from signaling.server import CALLS, PRESENCE
from storage import schema as s
from tongban.errors import InvalidInput
from web.http import current_session, ok, require_role
from web.state import SERVICES


async def get_call(request: web.Request) -> web.Response:
    session = await current_session(request)
    call_id = request.match_info["call_id"]
    if len(call_id) > 64:
        raise InvalidInput("call_id 过长", code="invalid_input")
    return ok(await request.app[CALLS].view(session.account, call_id))


async def list_calls(request: web.Request) -> web.Response:
    """The user's live calls, so a reloaded page can resume where it was."""
    session = await current_session(request)
    calls = request.app[CALLS]
    ids = await calls.live_calls_of(session.account.id)
    return ok({"calls": [await calls.view(session.account, i) for i in ids]})


async def board(request: web.Request) -> web.Response:
    """Supervisors' live board (R2, R12): every window under their agency."""
    session = await require_role(request, "supervisor", "admin")
    services = request.app[SERVICES]
    hub = request.app[PRESENCE]
    snap = await services.directory.snapshot()
    now = services.clock.now()
    scope = (
        set(snap.agencies)
        if session.account.role == "admin"
        else snap.subtree(session.account.agency_id)
    )
    windows = [w for w in snap.windows_in(scope) if w.home_side]
    counts: dict[tuple[int, str], int] = {}
    async with services.db.connect() as conn:
        rows = await conn.execute(
            sa.select(s.calls.c.window_id, s.calls.c.state, sa.func.count())
            .where(s.calls.c.state.in_(cs.LIVE_STATES))
            .group_by(s.calls.c.window_id, s.calls.c.state)
        )
        for window_id, state, n in rows:
            counts[(window_id, state)] = int(n)
    async with services.db.connect() as conn:
        absences = await store.absences_at(
            conn, [a.id for w in windows for a in snap.staff.get(w.id, ())], now
        )
    out: list[dict[str, Any]] = []
    for window in sorted(windows, key=lambda w: w.code):
        staff = snap.staff.get(window.id, ())
        statuses = await hub.statuses([a.id for a in staff])
        open_now = snap.window_open(window.id, now)
        on_duty = {a.id for a in snap.on_duty(window.id, now, absences)} if open_now else set()
        people = [
            {
                "username": a.username,
                "display_name": a.display_name,
                "presence": statuses.get(a.id, "offline"),
                "on_duty": a.id in on_duty,
            }
            for a in staff
        ]
        out.append(
            {
                "id": window.id,
                "code": window.code,
                "name": window.name,
                "hall": snap.hall_of(window.id).name,
                "agency": snap.agency_of_window(window.id).name,
                "open_now": open_now,
                # R2: staffed when someone on duty (not marked absent) is online or in a call
                "staffed": any(
                    p["on_duty"] and p["presence"] in ("online", "busy") for p in people
                ),
                "staff": people,
                "ringing": counts.get((window.id, cs.RINGING), 0)
                + counts.get((window.id, cs.OVERDUE), 0),
                "overdue": counts.get((window.id, cs.OVERDUE), 0),
                "in_call": counts.get((window.id, cs.ANSWERED), 0),
            }
        )
    return ok({"windows": out, "at": now.isoformat()})


async def experts(request: web.Request) -> web.Response:
    """Experts the answering clerk may invite (R3): the home locality's business departments."""
    session = await current_session(request)
    services = request.app[SERVICES]
    call_id = request.match_info["call_id"][:64]
    view = await request.app[CALLS].view(session.account, call_id)
    snap = await services.directory.snapshot()
    home = snap.agency_of_window(view["window"]["id"])
    scope = snap.subtree(home.id)
    found = [
        {"username": a.username, "display_name": a.display_name, "department": a.department}
        for a in sorted(snap.accounts.values(), key=lambda a: a.username)
        if a.role == "expert" and not a.disabled and a.agency_id in scope
    ]
    return ok({"experts": found})


async def rtc_config(request: web.Request) -> web.Response:
    """ICE servers for browsers: only what the operator configured, never a public default."""
    await current_session(request)
    return ok({"ice_servers": list(request.app[SERVICES].settings.ice_servers)})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{call_id}", get_call)
    app.router.add_get("/api/calls/{call_id}/experts", experts)
    app.router.add_get("/api/board", board)
    app.router.add_get("/api/rtc-config", rtc_config)
