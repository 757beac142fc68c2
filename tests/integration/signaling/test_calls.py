"""R1, R4, R5, R10: request → ring → answer over Socket.IO against the real app, ring
deadlines, misses, declines with reasons, robustness of every event."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from cases.idnumber import check_digit
from storage import schema as s

ID17 = "41072719900101123"


async def make_case(server: Any, region: str = "410727") -> int:
    api = await server.browser("zz.a1")
    status, body = await api.post(
        "/api/cases",
        {
            "matter_code": "HN-ZJ-001",
            "region_code": region,
            "applicant_name": "张三",
            "applicant_id_number": ID17 + check_digit(ID17),
        },
    )
    assert status == 201, body
    return int(body["id"])


async def rows(server: Any, table: Any, *where: Any) -> list[Any]:
    async with server.services.db.connect() as conn:
        return list(await conn.execute(sa.select(table).where(*where)))


async def test_request_rings_both_and_first_accept_wins(start_server: Any, sockets: Any) -> None:
    """R1: one click rings the home-locality window; the first accept wins atomically."""
    server = await start_server()
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    h1 = await sockets(server, "fq.h1")
    h2 = await sockets(server, "fq.h2")
    ack = await caller.call("call:request", {"case_id": case_id})
    assert ack["ok"], ack
    call_id = ack["call_id"]
    assert ack["window"]["code"] == "FQ-ZJ-01"
    assert {p["username"] for p in ack["on_duty"]} == {"fq.h1", "fq.h2"}
    assert ack["online"] == 2
    ringing = await caller.next("call:ringing")
    assert ringing["call_id"] == call_id
    for callee in (h1, h2):
        incoming = await callee.next("call:incoming")
        assert incoming["call_id"] == call_id
        assert incoming["case"]["applicant_name"] == "张*", "masked (R11)"
        assert incoming["caller"]["hall"] == "郑州市政务服务中心"

    acks = await asyncio.gather(
        h1.call("call:accept", {"call_id": call_id}),
        h2.call("call:accept", {"call_id": call_id}),
    )
    assert sorted(a["ok"] for a in acks) == [False, True], acks
    winner, loser = (h1, h2) if acks[0]["ok"] else (h2, h1)
    lost = acks[1] if acks[0]["ok"] else acks[0]
    assert lost["error"]["code"] == "call_taken"
    taken = await loser.next("call:taken")
    assert taken["by"]["username"] == winner.username
    answered = await caller.next("call:answered")
    assert answered["by"]["username"] == winner.username and not answered["answered_late"]
    await winner.next("call:answered")
    h2, h1 = winner, loser  # below: h2 answered, h1 did not
    status, view = await caller.api.get(f"/api/calls/{call_id}")
    assert status == 200 and view["state"] == "answered"
    assert [e["kind"] for e in view["events"]] == ["requested", "answered"]

    assert (await caller.call("call:hangup", {"call_id": call_id}))["ok"]
    for user in (caller, h2):
        ended = await user.next("call:ended")
        assert ended == {
            "call_id": call_id,
            "reason": "hangup",
            "state": "ended",
            "by": ended["by"],
        }
        assert ended["by"]["username"] == "zz.a1"
    rate = await caller.call("call:rate", {"call_id": call_id, "score": 5, "comment": "很好"})
    assert rate["ok"], rate
    assert (await h2.call("call:rate", {"call_id": call_id, "score": 4}))["ok"]
    assert not (await h1.call("call:rate", {"call_id": call_id, "score": 4}))["ok"]
    assert (await h2.call("call:unnecessary", {"call_id": call_id, "unnecessary": True}))["ok"]
    status, view = await caller.api.get(f"/api/calls/{call_id}")
    assert view["state"] == "ended" and view["unnecessary"]
    ratings = {m["username"]: m["rating"] for m in view["members"]}
    assert ratings == {"zz.a1": 5, loser.username: None, winner.username: 4}


async def test_decline_needs_a_reason_and_all_declines_end_the_call(
    start_server: Any, sockets: Any
) -> None:
    """R10: home-locality staff must not refuse without a reason."""
    server = await start_server()
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    h1 = await sockets(server, "fq.h1")
    h2 = await sockets(server, "fq.h2")
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    refused = await h1.call("call:decline", {"call_id": call_id, "reason": "   "})
    assert refused["error"]["code"] == "reason_required"
    refused = await h1.call("call:decline", {"call_id": call_id})
    assert refused["error"]["code"] == "reason_required"
    assert (await h1.call("call:decline", {"call_id": call_id, "reason": "正在办理其他业务"}))["ok"]
    declined = await caller.next("call:declined")
    assert declined["reason"] == "正在办理其他业务" and declined["remaining"] == 1
    again = await h1.call("call:accept", {"call_id": call_id})
    assert again["error"]["code"] == "invalid_state"
    assert (await h2.call("call:decline", {"call_id": call_id, "reason": "材料不属本窗口"}))["ok"]
    ended = await caller.next("call:ended")
    assert ended["reason"] == "declined"
    misses = await rows(server, s.misses, s.misses.c.call_id == call_id)
    assert misses == [], "a declined call is not a miss"


async def test_ring_timeout_reminds_by_sms_then_ends_missed_with_pending_misses(
    start_server: Any, sockets: Any
) -> None:
    """R4, R5: overdue → one SMS outbox entry per on-duty staff → missed → pending misses."""
    server = await start_server(ring_timeout=1.0, ring_limit=2.5)
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    h1 = await sockets(server, "fq.h1")
    await h1.close()  # fq.h1 is on duty but offline: rung, reminded and charged all the same
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    overdue = await caller.next("call:overdue")
    assert overdue["sms"] is True
    assert sorted(r["mobile"] for r in overdue["reminded"]) == ["138****0011", "138****0012"]
    outbox = await rows(server, s.sms_outbox, s.sms_outbox.c.template == "reminder")
    assert sorted(r.phone for r in outbox) == ["13800000011", "13800000012"]
    assert {r.dedupe_key for r in outbox} == {f"reminder:{call_id}:{r.account_id}" for r in outbox}
    missed = await caller.next("call:missed")
    assert missed["call_id"] == call_id
    ended = await caller.next("call:ended")
    assert ended["reason"] == "missed"
    misses = await rows(server, s.misses, s.misses.c.call_id == call_id)
    assert len(misses) == 2 and {m.status for m in misses} == {"pending"}
    _status, view = await caller.api.get(f"/api/calls/{call_id}")
    assert [e["kind"] for e in view["events"]] == ["requested", "overdue", "ended"]


async def test_answered_after_overdue_is_late_not_missed(start_server: Any, sockets: Any) -> None:
    server = await start_server(ring_timeout=0.5, ring_limit=30)
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    h1 = await sockets(server, "fq.h1")
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    await caller.next("call:overdue")
    await h1.next("call:overdue")
    ack = await h1.call("call:accept", {"call_id": call_id})
    assert ack["ok"] and ack["call"]["answered_late"] is True
    await h1.call("call:hangup", {"call_id": call_id})
    assert await rows(server, s.misses, s.misses.c.call_id == call_id) == []


async def test_cancel_before_overdue_is_no_miss_after_overdue_is(
    start_server: Any, sockets: Any
) -> None:
    server = await start_server(ring_timeout=0.5, ring_limit=30)
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    h1 = await sockets(server, "fq.h1")
    first = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    assert (await caller.call("call:cancel", {"call_id": first}))["ok"]
    assert (await h1.next("call:ended"))["reason"] == "cancelled"
    second = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    await caller.next("call:overdue")
    assert (await caller.call("call:cancel", {"call_id": second}))["ok"]
    assert await rows(server, s.misses, s.misses.c.call_id == first) == []
    assert len(await rows(server, s.misses, s.misses.c.call_id == second)) == 2


async def test_request_errors_have_clear_codes(start_server: Any, sockets: Any) -> None:
    server = await start_server()
    case_id = await make_case(server)
    lankao_case = await make_case(server, region="410225")
    caller = await sockets(server, "zz.a1")
    home = await sockets(server, "fq.h1")
    ack = await home.call("call:request", {"case_id": case_id})
    assert ack["error"]["code"] == "not_applicant_staff"
    ack = await caller.call("call:request", {"case_id": 999999})
    assert ack["error"]["code"] == "case_not_found"
    first = await caller.call("call:request", {"case_id": case_id})
    ack = await caller.call("call:request", {"case_id": case_id})
    assert ack["error"]["code"] == "call_already_active"
    assert ack["error"]["call_id"] == first["call_id"]
    await caller.call("call:cancel", {"call_id": first["call_id"]})
    # Lankao keeps real office hours (workdays 9-12, 13-17): refused outside them
    ack = await caller.call("call:request", {"case_id": lankao_case})
    if not ack["ok"]:
        assert ack["error"]["code"] == "outside_office_hours"
        assert ack["error"]["next_opening"]
    else:
        await caller.call("call:cancel", {"call_id": ack["call_id"]})


async def test_outside_office_hours_refusal_names_the_next_opening(
    start_server: Any, sockets: Any, clock: Any
) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    server = await start_server()
    lankao_case = await make_case(server, region="410225")
    caller = await sockets(server, "zz.a1")
    # Saturday 28 November 2026, 10:00 in Shanghai: closed until Monday 09:00
    target = datetime(2026, 11, 28, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    clock.advance(seconds=(target - clock.now()).total_seconds())
    ack = await caller.call("call:request", {"case_id": lankao_case})
    assert ack["error"]["code"] == "outside_office_hours"
    assert ack["error"]["next_opening"].startswith("2026-11-30T09:00:00+08:00")


async def test_every_event_validates_and_always_acks(start_server: Any, sockets: Any) -> None:
    server = await start_server()
    user = await sockets(server, "zz.a1")
    bad_payloads = [
        ("call:request", None),
        ("call:request", "x"),
        ("call:request", {"case_id": "1"}),
        ("call:request", {"case_id": 1, "extra": True}),
        ("call:request", [1]),
        ("call:accept", {}),
        ("call:accept", {"call_id": 5}),
        ("call:accept", {"call_id": "x" * 100}),
        ("call:decline", {"call_id": "nope"}),
        ("call:rate", {"call_id": "c", "score": 9}),
        ("presence:set", {"status": "busy"}),
        ("call:invite", {"call_id": "c"}),
        ("call:hangup", {"call_id": "no-such-call"}),
    ]
    for event, payload in bad_payloads:
        ack = await user.call(event, payload)
        assert ack["ok"] is False, (event, payload, ack)
        assert ack["error"]["code"] in {"invalid_input", "call_not_found", "reason_required"}, ack
    ack = await user.call("presence:set", {"status": "away"})
    assert ack == {"ok": True, "status": "away"}


async def test_connect_without_a_session_is_refused(start_server: Any) -> None:
    import socketio

    server = await start_server()
    client = socketio.AsyncClient(reconnection=False)
    refusals: list[Any] = []
    client.on("connect_error", lambda data: refusals.append(data))
    try:
        await client.connect(server.url, transports=["websocket"], wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        assert refusals == [{"message": "请先登录", "data": {"code": "unauthenticated"}}]
    else:
        await client.disconnect()
        raise AssertionError("connected without a session")


async def test_websockets_refuse_compression(start_server: Any) -> None:
    """Browsers offer permessage-deflate; a zlib state per socket would cost ~100 KiB per
    connected staff member (signaling/engineio_internals.py): the server declines it."""
    server = await start_server()
    api = await server.browser("fq.h1")
    async with api.http.ws_connect("/socket.io/?EIO=4&transport=websocket", compress=15) as ws:
        assert ws.compress == 0, "permessage-deflate was offered and must not be agreed"
        opened = await ws.receive_str(timeout=5)
        assert opened.startswith("0{"), opened  # engine.io's open packet: a working socket


async def test_login_elsewhere_revokes_the_socket(start_server: Any, sockets: Any) -> None:
    server = await start_server()
    first = await sockets(server, "fq.h1")
    await server.browser("fq.h1")  # logs in again elsewhere
    revoked = await first.next("session:revoked")
    assert revoked["reason"] == "replaced"


async def test_callee_disconnect_while_ringing_leaves_others_ringing(
    start_server: Any, sockets: Any
) -> None:
    server = await start_server()
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    h1 = await sockets(server, "fq.h1")
    h2 = await sockets(server, "fq.h2")
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    await h1.next("call:incoming")
    await h1.close()
    assert (await h2.call("call:accept", {"call_id": call_id}))["ok"]


async def test_a_reconnecting_callee_sees_the_ringing_call(start_server: Any, sockets: Any) -> None:
    server = await start_server()
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    late = await sockets(server, "fq.h1")
    incoming = await late.next("call:incoming")
    assert incoming["call_id"] == call_id


async def test_dropped_participant_ends_the_call_after_the_grace_period(
    start_server: Any, sockets: Any
) -> None:
    server = await start_server(reconnect_grace=0.5)
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    h1 = await sockets(server, "fq.h1")
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    await h1.call("call:accept", {"call_id": call_id})
    await caller.next("call:answered")
    await h1.close()
    reconnecting = await caller.next("call:reconnecting")
    assert reconnecting["who"]["username"] == "fq.h1"
    ended = await caller.next("call:ended")
    assert ended["reason"] == "connection_lost"


async def test_reconnecting_within_grace_keeps_the_call(start_server: Any, sockets: Any) -> None:
    server = await start_server(reconnect_grace=3)
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    h1 = await sockets(server, "fq.h1")
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    await h1.call("call:accept", {"call_id": call_id})
    await h1.close()
    await caller.next("call:reconnecting")
    again = await sockets(server, "fq.h1", api=h1.api)
    assert again.client.connected
    grace = await rows(
        server, s.deadlines, s.deadlines.c.call_id == call_id, s.deadlines.c.fired_at.is_(None)
    )
    assert grace == []
    _status, view = await caller.api.get(f"/api/calls/{call_id}")
    assert view["state"] == "answered"


async def test_expert_invited_joins_the_call(start_server: Any, sockets: Any) -> None:
    """R3: the answering staff brings in the business department's expert."""
    server = await start_server()
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    h1 = await sockets(server, "fq.h1")
    expert = await sockets(server, "fq.expert")
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    refused = await caller.call("call:invite", {"call_id": call_id, "username": "fq.expert"})
    assert not refused["ok"]
    await h1.call("call:accept", {"call_id": call_id})
    refused = await caller.call("call:invite", {"call_id": call_id, "username": "fq.expert"})
    assert refused["error"]["code"] == "not_answerer"
    refused = await h1.call("call:invite", {"call_id": call_id, "username": "fq.h2"})
    assert refused["error"]["code"] == "not_an_expert"
    assert (await h1.call("call:invite", {"call_id": call_id, "username": "fq.expert"}))["ok"]
    incoming = await expert.next("call:incoming")
    assert incoming["role"] == "expert" and incoming["invited_by"]["username"] == "fq.h1"
    joined = await expert.call("call:accept", {"call_id": call_id})
    assert joined["ok"], joined
    assert (await caller.next("call:joined"))["who"]["username"] == "fq.expert"
    await h1.call("call:hangup", {"call_id": call_id})
    assert (await expert.next("call:ended"))["reason"] == "hangup"


async def test_supervisor_board_shows_windows_and_ringing(start_server: Any, sockets: Any) -> None:
    server = await start_server()
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    await sockets(server, "fq.h1")
    await caller.call("call:request", {"case_id": case_id})
    sup = await server.browser("xx.sup")
    status, board = await sup.get("/api/board")
    assert status == 200
    (fq,) = [w for w in board["windows"] if w["code"] == "FQ-ZJ-01"]
    assert fq["staffed"] and fq["ringing"] == 1
    assert {p["username"]: p["presence"] for p in fq["staff"]} == {
        "fq.h1": "online",
        "fq.h2": "offline",
    }
    assert all(w["code"] != "LK-ZJ-01" for w in board["windows"]), "Lankao is not under Xinxiang"
    staff = await server.browser("zz.a1")
    assert (await staff.get("/api/board"))[0] == 403


async def test_a_restart_while_ringing_still_ends_the_call_once(
    start_server: Any, sockets: Any
) -> None:
    """R4: deadlines are stored; a node that restarts mid-ring still fires them, once."""
    first = await start_server(ring_timeout=2.0, ring_limit=5.0)
    case_id = await make_case(first)
    caller = await sockets(first, "zz.a1")
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    await caller.close()
    await first.client.close()  # the node stops while the call rings

    second = await start_server(ring_timeout=2.0, ring_limit=5.0)
    watcher = await sockets(second, "zz.a1")  # events from here on are queued
    status, view = await watcher.api.get(f"/api/calls/{call_id}")
    assert status == 200
    if view["state"] != "missed":  # still ringing after the restart: it ends while we watch
        assert (await watcher.next("call:ended", timeout=20))["reason"] == "missed"
    misses = await rows(second, s.misses, s.misses.c.call_id == call_id)
    assert len(misses) == 2
    reminders = await rows(second, s.sms_outbox, s.sms_outbox.c.template == "reminder")
    assert len(reminders) == 2
    deadlines = await rows(second, s.deadlines, s.deadlines.c.call_id == call_id)
    assert sorted(d.kind for d in deadlines if d.fired_at is not None) == ["limit", "overdue"]


async def test_a_clerk_waiting_online_is_not_logged_out(
    start_server: Any, sockets: Any, clock: Any
) -> None:
    """R2: the console stays signed in while on duty and online; away, the idle timeout acts."""
    from signaling.server import PRESENCE, keep_on_duty_sessions_alive

    server = await start_server()
    waiting = await sockets(server, "fq.h1")
    away = await sockets(server, "fq.h2")
    assert (await away.call("presence:set", {"status": "away"}))["ok"]
    for _ in range(3):
        clock.advance(minutes=20)
        await keep_on_duty_sessions_alive(server.services, server.app[PRESENCE])
    assert (await waiting.api.get("/api/me"))[0] == 200
    status, body = await away.api.get("/api/me")
    assert status == 401 and body["error"]["code"] == "session_expired"


async def test_me_shows_today_s_hours_and_experts_can_be_listed(
    start_server: Any, sockets: Any
) -> None:
    server = await start_server()
    api = await server.browser("lk.h1")
    status, me = await api.get("/api/me")
    assert status == 200
    (window,) = me["windows"]
    assert isinstance(window["open_now"], bool)
    assert window["office_hours_today"] in (
        [],
        [{"opens": "09:00", "closes": "12:00"}, {"opens": "13:00", "closes": "17:00"}],
    )
    fq = await server.browser("fq.h1")
    (fq_window,) = (await fq.get("/api/me"))[1]["windows"]
    assert fq_window["office_hours_today"] == [{"opens": "00:00", "closes": "24:00"}]
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    callee = await sockets(server, "fq.h1", api=fq)
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    await callee.call("call:accept", {"call_id": call_id})
    status, body = await fq.get(f"/api/calls/{call_id}/experts")
    assert status == 200
    assert [e["username"] for e in body["experts"]] == ["fq.expert"]


async def test_staff_marked_absent_are_not_rung_reminded_or_charged(
    start_server: Any, sockets: Any
) -> None:
    """On duty means assigned, in office hours and not marked absent by a supervisor."""
    from datetime import timedelta

    server = await start_server(ring_timeout=0.3, ring_limit=0.6)
    sup = await server.browser("fq.sup")
    now = server.services.clock.now()
    leave = {
        "username": "fq.h2",
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(hours=8)).isoformat(),
        "reason": "年休假",
    }
    status, _ = await (await server.browser("xx.sup")).post(
        "/api/absences", {**leave, "username": "lk.h1"}
    )
    assert status == 403, "Lankao is not under Xinxiang"
    status, body = await sup.post("/api/absences", {**leave, "starts_at": "tomorrow morning"})
    assert status == 400 and body["error"]["code"] == "invalid_time"
    status, body = await sup.post("/api/absences", leave)
    assert status == 201, body
    status, body = await sup.get("/api/absences")
    assert [a["username"] for a in body["absences"]] == ["fq.h2"]

    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    ack = await caller.call("call:request", {"case_id": case_id})
    assert [p["username"] for p in ack["on_duty"]] == ["fq.h1"]
    assert (await caller.next("call:ended"))["reason"] == "missed"
    misses = await rows(server, s.misses, s.misses.c.call_id == ack["call_id"])
    reminders = await rows(server, s.sms_outbox, s.sms_outbox.c.template == "reminder")
    assert [m.account_id for m in misses] == [r.account_id for r in reminders]
    assert len(misses) == 1
    status, board = await sup.get("/api/board")
    (fq,) = [w for w in board["windows"] if w["code"] == "FQ-ZJ-01"]
    assert {p["username"]: p["on_duty"] for p in fq["staff"]} == {"fq.h1": True, "fq.h2": False}
    assert fq["staffed"] is False, "nobody on duty is online"


async def test_two_requests_of_one_clerk_at_once_ring_once(start_server: Any, sockets: Any) -> None:
    """A double click, or a request per case sent together: all read "no live call" before
    any writes; the database's unique index on live calls lets one in, the others answer
    ``call_already_active`` with the winner's call (migration 0004)."""
    server = await start_server()
    cases = [await make_case(server), await make_case(server)]
    caller = await sockets(server, "zz.a1")
    acks = await asyncio.gather(
        *(caller.call("call:request", {"case_id": case}) for _ in range(3) for case in cases)
    )
    won = [a for a in acks if a["ok"]]
    lost = [a for a in acks if not a["ok"]]
    assert len(won) == 1, acks
    assert {a["error"]["code"] for a in lost} == {"call_already_active"}
    assert {a["error"]["call_id"] for a in lost} == {won[0]["call_id"]}
    live = await rows(server, s.calls, s.calls.c.state == "ringing")
    assert [r.id for r in live] == [won[0]["call_id"]]
    assert (await caller.call("call:cancel", {"call_id": won[0]["call_id"]}))["ok"]


async def test_a_socket_s_rooms_are_indexed_and_gone_after_it_leaves(
    start_server: Any, sockets: Any
) -> None:
    """The node's Socket.IO manager keeps each socket's rooms (signaling/rooms.py), so a
    disconnect leaves just those; nothing of a socket stays behind once it has gone."""
    from signaling.rooms import Manager
    from signaling.server import SIO

    server = await start_server()
    manager = server.app[SIO].manager
    assert isinstance(manager, Manager)
    h1 = await sockets(server, "fq.h1")
    h2 = await sockets(server, "fq.h2")
    assert len(manager.sid_rooms["/"]) == 2
    for sid, rooms in manager.sid_rooms["/"].items():
        assert set(rooms) == {r for r, members in manager.rooms["/"].items() if sid in members}
        joined = manager.get_rooms(sid, "/")
        assert len(joined) == 3 and sid in joined, "its own room, user:…, session:…"
    await h1.close()
    await h2.close()
    for _ in range(50):
        if not manager.sid_rooms:
            break
        await asyncio.sleep(0.05)
    assert manager.sid_rooms == {}
    assert manager.rooms == {}
