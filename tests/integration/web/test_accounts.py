"""R8: login, one active session, lockout, password rules, admin account management, and
the audit records they leave. Runs on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from storage import schema as s


async def audit_rows(server: Any, action: str) -> list[Any]:
    async with server.services.db.connect() as conn:
        return list(
            await conn.execute(
                sa.select(s.audit_log)
                .where(s.audit_log.c.action == action)
                .order_by(s.audit_log.c.id)
            )
        )


async def test_login_then_me_shows_agency_and_windows(start_server: Any) -> None:
    server = await start_server()
    api = await server.browser()
    status, body = await api.login("zz.a1")
    assert status == 200
    assert body["user"]["username"] == "zz.a1"
    status, me = await api.get("/api/me")
    assert status == 200
    assert me["agency"]["region_code"] == "410100"
    assert [w["code"] for w in me["windows"]] == ["ZZ-TB-01"]
    assert me["mobile"] == "138****0001", "phone numbers leave the server masked (R11)"
    rows = await audit_rows(server, "login")
    assert [(r.actor, r.result) for r in rows] == [("zz.a1", "ok")]


async def test_cookie_is_http_only_and_same_site(start_server: Any) -> None:
    server = await start_server()
    api = await server.browser()
    async with api.http.post(
        "/api/login", json={"username": "zz.a1", "password": "Demo#2026"}
    ) as resp:
        header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header


async def test_wrong_password_is_401_and_audited(start_server: Any) -> None:
    server = await start_server()
    api = await server.browser()
    status, body = await api.login("zz.a1", "wrong-password")
    assert status == 401 and body["error"]["code"] == "bad_credentials"
    status, body = await api.login("nobody", "wrong-password")
    assert status == 401 and body["error"]["code"] == "bad_credentials"
    results = [(r.actor, r.result) for r in await audit_rows(server, "login")]
    assert results == [("zz.a1", "bad_password"), ("nobody", "unknown_user")]


async def test_five_failures_lock_the_account_even_for_the_right_password(
    start_server: Any, clock: Any
) -> None:
    server = await start_server()
    api = await server.browser()
    for _ in range(4):
        assert (await api.login("fq.h1", "Wrong#password1"))[0] == 401
    status, body = await api.login("fq.h1", "Wrong#password1")
    assert status == 401
    status, body = await api.login("fq.h1")
    assert status == 423 and body["error"]["code"] == "account_locked"
    assert len(await audit_rows(server, "account.lockout")) == 1
    clock.advance(minutes=29)
    assert (await api.login("fq.h1"))[0] == 423
    clock.advance(minutes=2)
    assert (await api.login("fq.h1"))[0] == 200, "the lock ends after 30 minutes"


async def test_a_second_login_ends_the_first_session(start_server: Any) -> None:
    server = await start_server()
    first = await server.browser("fq.h1")
    assert (await first.get("/api/me"))[0] == 200
    second = await server.browser("fq.h1")
    status, body = await first.get("/api/me")
    assert status == 401 and body["error"]["code"] == "session_replaced"
    assert (await second.get("/api/me"))[0] == 200


async def test_idle_and_absolute_timeouts(start_server: Any, clock: Any) -> None:
    server = await start_server()
    api = await server.browser("fq.h1")
    clock.advance(minutes=29)
    assert (await api.get("/api/me"))[0] == 200, "activity keeps the session alive"
    clock.advance(minutes=29)
    assert (await api.get("/api/me"))[0] == 200
    clock.advance(minutes=31)
    status, body = await api.get("/api/me")
    assert status == 401 and body["error"]["code"] == "session_expired"
    async with server.services.db.connect() as conn:
        ended = list(
            await conn.execute(sa.select(s.sessions).where(s.sessions.c.revoked_at.is_not(None)))
        )
    # stored as ended, on PostgreSQL too (the refusal used to roll the update back there)
    assert [r.revoked_reason for r in ended] == ["expired"]
    api2 = await server.browser("fq.h2")
    for _ in range(25):  # active every 29 minutes, but only 12 hours in all
        clock.advance(minutes=29)
        status, _body = await api2.get("/api/me")
        if status == 401:
            break
    assert status == 401


async def test_logout_ends_the_session(start_server: Any) -> None:
    server = await start_server()
    api = await server.browser("fq.h1")
    assert (await api.post("/api/logout"))[0] == 200
    assert (await api.get("/api/me"))[0] == 401


async def test_staff_change_their_own_password_under_the_rule(start_server: Any) -> None:
    server = await start_server()
    api = await server.browser("fq.h1")
    status, body = await api.post(
        "/api/me/password", {"current_password": "Demo#2026", "new_password": "short"}
    )
    assert status == 400 and body["error"]["code"] == "weak_password"
    status, body = await api.post(
        "/api/me/password", {"current_password": "Demo#2026", "new_password": "alllowercase1"}
    )
    assert status == 400 and body["error"]["code"] == "weak_password", "only 2 classes"
    status, body = await api.post(
        "/api/me/password", {"current_password": "nope", "new_password": "Better#Pass2026"}
    )
    assert status == 400 and body["error"]["code"] == "wrong_password"
    status, _ = await api.post(
        "/api/me/password", {"current_password": "Demo#2026", "new_password": "Better#Pass2026"}
    )
    assert status == 200
    other = await server.browser()
    assert (await other.login("fq.h1"))[0] == 401
    assert (await other.login("fq.h1", "Better#Pass2026"))[0] == 200
    results = [r.result for r in await audit_rows(server, "account.password_change")]
    assert results == ["wrong_password", "ok"]


async def test_admin_creates_disables_and_resets_accounts(start_server: Any) -> None:
    server = await start_server()
    admin = await server.browser("admin")
    staff = await server.browser("zz.a1")
    status, body = await staff.get("/api/admin/accounts")
    assert status == 403
    new = {
        "username": "fq.h3",
        "display_name": "封丘属地窗口三",
        "role": "staff",
        "agency_region": "410727",
        "password": "Start#Pass2026",
        "mobile": "13800000014",
        "windows": ["FQ-ZJ-01"],
    }
    status, body = await admin.post("/api/admin/accounts", new)
    assert status == 201, body
    assert body["windows"][0]["code"] == "FQ-ZJ-01"
    status, body = await admin.post("/api/admin/accounts", new)
    assert status == 409 and body["error"]["code"] == "username_taken"
    status, body = await admin.post(
        "/api/admin/accounts", {**new, "username": "x", "password": "weak"}
    )
    assert status == 400 and body["error"]["code"] == "weak_password"

    h3 = await server.browser()
    assert (await h3.login("fq.h3", "Start#Pass2026"))[0] == 200
    assert (await h3.get("/api/me"))[0] == 200
    status, _ = await admin.patch("/api/admin/accounts/fq.h3", {"disabled": True})
    assert status == 200
    status, body = await h3.get("/api/me")
    assert status == 401, "disabling revokes the session at once"
    assert (await (await server.browser()).login("fq.h3", "Start#Pass2026"))[0] == 401

    status, _ = await admin.patch(
        "/api/admin/accounts/fq.h3", {"disabled": False, "password": "Reset#Pass2026"}
    )
    assert status == 200
    assert (await (await server.browser()).login("fq.h3", "Reset#Pass2026"))[0] == 200
    actions = [r.action for r in await audit_rows(server, "account.create")]
    actions += [r.action for r in await audit_rows(server, "account.disable")]
    actions += [r.action for r in await audit_rows(server, "account.password_reset")]
    assert actions == ["account.create", "account.disable", "account.password_reset"]


async def test_the_app_cannot_edit_or_delete_the_audit_log(start_server: Any) -> None:
    server = await start_server()
    await server.browser("zz.a1")
    for statement in (sa.delete(s.audit_log), sa.update(s.audit_log).values(actor="x")):
        try:
            async with server.services.db.begin() as conn:
                await conn.execute(statement)
        except sa.exc.DBAPIError:
            continue
        raise AssertionError(f"{statement} was allowed on the audit log")


@pytest.mark.parametrize("backend", ["sqlite"])  # the server's direct connection is SQLite's
async def test_a_session_check_takes_no_trip_to_aiosqlites_thread(
    start_server: Any, clock: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every socket's session is checked again every 15 s, every HTTP request checks it: on
    the server's SQLite the reads and the occasional touch run on the loop's connection."""
    from tests.integration.storage.test_writes import HandOffs

    server = await start_server()
    await server.browser("fq.h1")
    async with server.services.db.connect() as conn:
        ((session_id, before),) = list(
            await conn.execute(sa.select(s.sessions.c.id, s.sessions.c.last_seen_at))
        )
    clock.advance(minutes=2)  # past TOUCH_EVERY: the check also writes last_seen_at
    counter = HandOffs(monkeypatch)
    session = await server.services.sessions.resolve_id(session_id)
    assert session.account.username == "fq.h1" and session.account.window_ids
    assert counter.count == 0, "no trip to aiosqlite's thread"
    async with server.services.db.connect() as conn:
        seen = await conn.scalar(sa.select(s.sessions.c.last_seen_at))
    assert seen is not None and seen >= before + timedelta(minutes=2), "touched and committed"
