"""Login, logout, me, own password; the admin's account management (R8)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import Field

from directory.model import Account
from directory.office_hours import SHANGHAI, intervals_on
from directory.snapshot import DirectorySnapshot
from tongban.masking import mask_phone
from tongban.validation import Payload
from web.http import COOKIE, current_session, ok, read_body, require_role, source_of
from web.state import SERVICES


class LoginBody(Payload):
    username: str = Field(min_length=1, max_length=60)
    password: str = Field(min_length=1, max_length=200)


class PasswordBody(Payload):
    current_password: str = Field(max_length=200)
    new_password: str = Field(max_length=200)


class NewAccountBody(Payload):
    username: str = Field(min_length=1, max_length=60)
    display_name: str = Field(default="", max_length=60)
    role: str
    agency_region: str = Field(max_length=12)
    password: str = Field(max_length=200)
    mobile: str = Field(default="", max_length=20)
    department: str = Field(default="", max_length=100)
    windows: list[str] = Field(default_factory=list, max_length=20)


class AccountChangeBody(Payload):
    disabled: bool | None = None
    password: str | None = Field(default=None, max_length=200)


def account_view(
    account: Account, snap: DirectorySnapshot, *, full_mobile: bool = False
) -> dict[str, Any]:
    agency = snap.agencies.get(account.agency_id)
    windows = []
    for wid in account.window_ids:
        window = snap.windows.get(wid)
        if window is None:
            continue
        windows.append(
            {
                "id": window.id,
                "code": window.code,
                "name": window.name,
                "kind": window.kind,
                "hall": snap.halls[window.hall_id].name,
            }
        )
    return {
        "id": account.id,
        "username": account.username,
        "display_name": account.display_name,
        "role": account.role,
        "agency": {
            "id": agency.id,
            "name": agency.name,
            "region_code": agency.region_code,
            "level": agency.level,
        }
        if agency
        else None,
        "department": account.department,
        "mobile": account.mobile if full_mobile else mask_phone(account.mobile),
        "disabled": account.disabled,
        "windows": windows,
    }


async def login(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    body = await read_body(request, LoginBody)
    try:
        token, session = await services.sessions.login(
            body.username, body.password, source_of(request)
        )
    except Exception as err:
        services.metrics.logins.labels(getattr(err, "code", "error")).inc()
        raise
    services.metrics.logins.labels("ok").inc()
    snap = await services.directory.snapshot()
    response = ok({"user": account_view(session.account, snap)})
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=services.settings.secure_cookies,
        path="/",
    )
    return response


async def logout(request: web.Request) -> web.Response:
    session = await current_session(request)
    await request.app[SERVICES].sessions.logout(session, source_of(request))
    response = ok()
    response.del_cookie(COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    session = await current_session(request)
    snap = await services.directory.snapshot()
    view = account_view(session.account, snap)
    now = services.clock.now()
    today = now.astimezone(SHANGHAI).date()
    for window in view["windows"]:
        periods = snap.window_periods(window["id"])
        window["open_now"] = snap.window_open(window["id"], now)
        window["office_hours_today"] = [
            {"opens": f"{a.astimezone(SHANGHAI):%H:%M}", "closes": _closes(b)}
            for a, b in intervals_on(periods, snap.calendar, today)
        ]
    view["session"] = {"expires_at": session.expires_at.isoformat()}
    view["idle_timeout_s"] = int(services.sessions.policy.idle.total_seconds())
    return ok(view)


def _closes(at: datetime) -> str:
    local = at.astimezone(SHANGHAI)
    return "24:00" if local.hour == 0 and local.minute == 0 else f"{local:%H:%M}"


async def change_password(request: web.Request) -> web.Response:
    session = await current_session(request)
    body = await read_body(request, PasswordBody)
    await request.app[SERVICES].accounts.change_own_password(
        account=session.account,
        source=source_of(request),
        current=body.current_password,
        new=body.new_password,
    )
    return ok()


async def list_accounts(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    services = request.app[SERVICES]
    snap = await services.directory.snapshot()
    accounts = await services.accounts.list()
    return ok({"accounts": [account_view(a, snap) for a in accounts]})


async def create_account(request: web.Request) -> web.Response:
    session = await require_role(request, "admin")
    body = await read_body(request, NewAccountBody)
    services = request.app[SERVICES]
    account = await services.accounts.create(
        actor=session.account,
        source=source_of(request),
        username=body.username,
        display_name=body.display_name,
        role=body.role,
        agency_region=body.agency_region,
        password=body.password,
        mobile=body.mobile,
        department=body.department,
        window_codes=body.windows,
    )
    snap = await services.directory.reload()
    return ok(account_view(account, snap), status=201)


async def change_account(request: web.Request) -> web.Response:
    session = await require_role(request, "admin")
    body = await read_body(request, AccountChangeBody)
    services = request.app[SERVICES]
    username = request.match_info["username"]
    if body.password is not None:
        await services.accounts.reset_password(
            actor=session.account,
            source=source_of(request),
            username=username,
            password=body.password,
        )
    if body.disabled is not None:
        await services.accounts.set_disabled(
            actor=session.account,
            source=source_of(request),
            username=username,
            disabled=body.disabled,
        )
    snap = await services.directory.reload()
    return ok(account_view(await services.accounts.get(username), snap))


def setup(app: web.Application) -> None:
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_post("/api/me/password", change_password)
    app.router.add_get("/api/admin/accounts", list_accounts)
    app.router.add_post("/api/admin/accounts", create_account)
    app.router.add_patch("/api/admin/accounts/{username}", change_account)
