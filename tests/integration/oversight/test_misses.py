"""R5: supervisors verify misses; more than the limit of confirmed misses in a calendar month
escalates the staff member to the supervisors of the parent agency (SMS and in-app), an
excusal withdraws it. Runs on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from oversight.http import escalation_notifiers
from oversight.notify import EscalationEvent
from storage import schema as s
from tests.integration.oversight.helpers import add_missed_call, demo, rows

OCT = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)  # 10:00 local on a Monday


class Recorder:
    """A notifier standing in for signaling's Socket.IO emitter."""

    def __init__(self) -> None:
        self.events: list[EscalationEvent] = []

    async def escalation_changed(self, event: EscalationEvent) -> None:
        self.events.append(event)


async def misses_of(server: Any, username: str, count: int, start: datetime = OCT) -> list[int]:
    d = await demo(server)
    ids = []
    for i in range(count):
        ids += await add_missed_call(server, d, start + timedelta(days=i), [username])
    return ids


async def confirm(api: Any, miss_id: int, verdict: str = "confirmed") -> tuple[int, Any]:
    return await api.post(
        f"/api/misses/{miss_id}/verify", {"verdict": verdict, "reason": "值班期间未接听，核实属实"}
    )


async def test_four_confirmed_misses_escalate_once_to_the_parent_agency(start_server: Any) -> None:
    server = await start_server()
    notices = Recorder()
    escalation_notifiers(server.app).add(notices)
    d = await demo(server)
    ids = await misses_of(server, "fq.h1", 4)
    sup = await server.browser("fq.sup")
    results = []
    for miss_id in ids:
        status, body = await confirm(sup, miss_id)
        assert status == 200, body
        results.append(body)
    assert [r["confirmed"] for r in results] == [1, 2, 3, 4]
    assert [r["standing"] for r in results] == ["ok", "ok", "at_risk", "over_limit"]
    assert [r["escalation"] is None for r in results] == [True, True, True, False]
    escalation = results[-1]["escalation"]
    assert escalation["to_agency"]["region_code"] == "410700", "the parent of Fengqiu (R5)"
    assert escalation["from_agency"]["region_code"] == "410727"
    assert escalation["state"] == "active" and escalation["confirmed_count"] == 4

    stored = await rows(server, s.escalations)
    assert len(stored) == 1 and stored[0].month == "2026-10"
    assert stored[0].to_agency_id == d.agencies["410700"]

    xx = await server.browser("xx.sup")
    status, body = await xx.get("/api/escalations?month=2026-10")
    assert status == 200
    [seen] = body["escalations"]
    assert seen["staff"]["username"] == "fq.h1" and seen["confirmed_count"] == 4
    assert seen["staff"]["mobile"] == "138****0011", "phones leave the server masked (R11)"
    status, body = await sup.get("/api/escalations?month=2026-10")
    assert status == 200 and body["escalations"] == [], "addressed above Fengqiu, not to it"

    sms = await rows(server, s.sms_outbox, s.sms_outbox.c.template == "escalation")
    assert [(m.account_id, m.phone) for m in sms] == [(d.id("xx.sup"), "13800000031")]
    assert sms[0].dedupe_key == f"escalation:{seen['id']}:{d.id('xx.sup')}:1"
    assert sms[0].params["count"] == "4" and sms[0].params["month"] == "2026-10"

    assert [(e.kind, e.supervisor_ids) for e in notices.events] == [("new", (d.id("xx.sup"),))]
    assert notices.events[0].payload()["staff"]["username"] == "fq.h1"

    verified = await rows(server, s.audit_log, s.audit_log.c.action == "miss.verify")
    assert [(a.actor, a.result, a.target) for a in verified] == [
        ("fq.sup", "confirmed", f"miss:{i}") for i in ids
    ]
    created = await rows(server, s.audit_log, s.audit_log.c.action == "escalation.create")
    assert len(created) == 1


async def test_three_confirmed_misses_are_at_risk_not_escalated(start_server: Any) -> None:
    server = await start_server()
    ids = await misses_of(server, "fq.h1", 3)
    await misses_of(server, "fq.h2", 1)
    sup = await server.browser("fq.sup")
    for miss_id in ids:
        assert (await confirm(sup, miss_id))[0] == 200
    assert await rows(server, s.escalations) == []
    assert await rows(server, s.sms_outbox) == []

    status, body = await sup.get("/api/misses?month=2026-10")
    assert status == 200 and len(body["misses"]) == 4
    staff = {p["username"]: p for p in body["staff"]}
    assert staff["fq.h1"]["confirmed"] == 3 and staff["fq.h1"]["at_risk"] is True
    assert staff["fq.h2"]["confirmed"] == 0 and staff["fq.h2"]["at_risk"] is False
    first = body["misses"][0]
    assert first["staff"]["username"] == "fq.h1" and first["staff_at_risk"] is True
    assert first["window"]["code"] == "FQ-ZJ-01" and first["case_no"].startswith("TB410727-")
    assert first["status"] == "confirmed" and first["verdicts"][0]["by"]["username"] == "fq.sup"
    assert first["verdicts"][0]["reason"] == "值班期间未接听，核实属实"

    status, body = await sup.get("/api/misses?month=2026-10&status=pending")
    assert [m["staff"]["username"] for m in body["misses"]] == ["fq.h2"]
    assert body["staff"][0]["confirmed"] == 0

    h1 = await server.browser("fq.h1")
    status, body = await h1.get("/api/misses?month=2026-10")
    assert status == 200, "staff see their own misses"
    assert {m["staff"]["username"] for m in body["misses"]} == {"fq.h1"}
    assert body["staff"][0]["at_risk"] is True


async def test_misses_in_two_months_do_not_add_up(start_server: Any) -> None:
    server = await start_server()
    # 2026-10-31T15:00Z ends 23:05 local on the 31st; 16:00Z ends 00:05 on 1 November
    ids = await misses_of(server, "fq.h1", 2, datetime(2026, 10, 30, 15, 0, tzinfo=UTC))
    ids += await misses_of(server, "fq.h1", 2, datetime(2026, 10, 31, 16, 0, tzinfo=UTC))
    sup = await server.browser("fq.sup")
    months = []
    for miss_id in ids:
        status, body = await confirm(sup, miss_id)
        assert status == 200
        months.append((body["month"], body["confirmed"]))
    assert months == [("2026-10", 1), ("2026-10", 2), ("2026-11", 1), ("2026-11", 2)]
    assert await rows(server, s.escalations) == []


async def test_excusing_one_of_four_withdraws_and_reconfirming_reactivates(
    start_server: Any,
) -> None:
    server = await start_server()
    notices = Recorder()
    escalation_notifiers(server.app).add(notices)
    d = await demo(server)
    ids = await misses_of(server, "fq.h1", 4)
    sup = await server.browser("fq.sup")
    for miss_id in ids:
        await confirm(sup, miss_id)
    status, body = await sup.post(
        f"/api/misses/{ids[1]}/verify", {"verdict": "excused", "reason": "系统故障，铃声未送达"}
    )
    assert status == 200
    assert body["confirmed"] == 3 and body["at_risk"] is True
    assert body["escalation"]["state"] == "withdrawn"
    [withdrawn] = await rows(server, s.audit_log, s.audit_log.c.action == "escalation.withdraw")
    assert withdrawn.actor == "fq.sup"
    xx = await server.browser("xx.sup")
    _, listed = await xx.get("/api/escalations?month=2026-10")
    assert [e["state"] for e in listed["escalations"]] == ["withdrawn"]

    # re-verification: the supervisor changes the verdict back
    status, body = await confirm(sup, ids[1])
    assert body["escalation"]["state"] == "active" and body["confirmed"] == 4
    stored = await rows(server, s.escalations)
    assert len(stored) == 1, "one escalation per staff member and month, re-activated"
    sms = await rows(server, s.sms_outbox)
    assert [m.dedupe_key.rsplit(":", 1)[1] for m in sms] == ["1", "2"], "told again"
    assert [e.kind for e in notices.events] == ["new", "withdrawn", "new"]

    _, misses = await sup.get("/api/misses?month=2026-10")
    history = next(m for m in misses["misses"] if m["id"] == ids[1])["verdicts"]
    assert [v["verdict"] for v in history] == ["confirmed", "excused", "confirmed"]
    verified = await rows(server, s.audit_log, s.audit_log.c.action == "miss.verify")
    assert [a.detail["previous"] for a in verified][-2:] == ["confirmed", "excused"]
    assert d.id("fq.h1") == stored[0].account_id


async def test_two_supervisors_at_once_make_exactly_one_escalation(start_server: Any) -> None:
    """Write skew: both see 3 confirmed before the other commits, unless the month is locked."""
    server = await start_server()
    ids = await misses_of(server, "fq.h1", 5)
    fq = await server.browser("fq.sup")
    xx = await server.browser("xx.sup")
    for miss_id in ids[:2]:
        await confirm(fq, miss_id)
    results = await asyncio.gather(confirm(fq, ids[2]), confirm(xx, ids[3]), confirm(fq, ids[4]))
    assert [status for status, _ in results] == [200, 200, 200]
    assert sorted(body["confirmed"] for _, body in results) == [3, 4, 5]
    [escalation] = await rows(server, s.escalations)
    assert escalation.state == "active" and escalation.confirmed_count == 5
    assert len(await rows(server, s.sms_outbox)) == 1
    assert len(await rows(server, s.audit_log, s.audit_log.c.action == "escalation.create")) == 1


async def test_jurisdiction_and_roles(start_server: Any) -> None:
    server = await start_server()
    d = await demo(server)
    [lankao] = await add_missed_call(server, d, OCT, ["lk.h1"], window="LK-ZJ-01")
    [fengqiu] = await misses_of(server, "fq.h1", 1)
    sup = await server.browser("fq.sup")
    status, body = await confirm(sup, lankao)
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await confirm(sup, 999999)
    assert status == 404 and body["error"]["code"] == "miss_not_found"
    status, body = await sup.post(
        f"/api/misses/{fengqiu}/verify", {"verdict": "confirmed", "reason": "  "}
    )
    assert status == 400
    status, body = await sup.post(
        f"/api/misses/{fengqiu}/verify", {"verdict": "maybe", "reason": "x"}
    )
    assert status == 400
    _, listed = await sup.get("/api/misses?month=2026-10")
    assert [m["id"] for m in listed["misses"]] == [fengqiu], "Lankao is outside Fengqiu"

    auditor = await server.browser("ly.audit")
    status, body = await auditor.get("/api/misses?month=2026-10")
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert (await confirm(auditor, fengqiu))[0] == 403
    staff = await server.browser("fq.h1")
    assert (await confirm(staff, fengqiu))[0] == 403, "staff cannot verify their own miss"
    status, body = await sup.get("/api/misses?month=2026-13")
    assert status == 400 and body["error"]["code"] == "invalid_month"
    status, body = await sup.get("/api/escalations?month=10-2026")
    assert status == 400 and body["error"]["code"] == "invalid_month"
    assert (await sup.get("/api/misses?month=2026-10&status=odd"))[0] == 400
    assert await rows(server, s.audit_log, s.audit_log.c.action == "miss.verify") == []
