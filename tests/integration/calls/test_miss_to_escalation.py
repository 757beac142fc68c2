"""R4, R5 end to end: unanswered calls through signaling become misses, a supervisor confirms
them, and the fourth confirmed miss in a month escalates to the parent agency, whose
supervisor is told in the app and by SMS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from oversight.rules import month_of
from storage import schema as s
from tests.integration.signaling.test_calls import make_case
from tests.support.aliyun_double import AliyunDouble


@pytest.fixture
async def aliyun() -> AsyncIterator[AliyunDouble]:
    double = AliyunDouble()
    await double.start()
    yield double
    await double.stop()


async def test_four_missed_calls_confirmed_escalate_to_xinxiang(
    start_server: Any, sockets: Any, aliyun: AliyunDouble
) -> None:
    server = await start_server(ring_timeout=0.3, ring_limit=0.6, **aliyun.settings())
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    xx = await sockets(server, "xx.sup")
    for _ in range(4):
        ack = await caller.call("call:request", {"case_id": case_id})
        assert ack["ok"], ack
        ended = await caller.next("call:ended")
        assert ended["reason"] == "missed"

    fq_sup = await server.browser("fq.sup")
    month = month_of(server.services.clock.now())
    status, body = await fq_sup.get(f"/api/misses?month={month}")
    assert status == 200, body
    mine = [m for m in body["misses"] if m["staff"]["username"] == "fq.h1"]
    assert len(mine) == 4 and {m["status"] for m in mine} == {"pending"}
    for n, miss in enumerate(mine, start=1):
        status, result = await fq_sup.post(
            f"/api/misses/{miss['id']}/verify", {"verdict": "confirmed", "reason": "值班期间未接听"}
        )
        assert status == 200, result
        if n < 4:
            assert xx.pending("escalation:new") == 0
    notice = await xx.next("escalation:new")
    assert notice["staff"]["username"] == "fq.h1" and notice["confirmed_count"] == 4

    xx_api = await server.browser("xx.sup")
    status, body = await xx_api.get(f"/api/escalations?month={month}")
    assert status == 200
    escalations = [e for e in body["escalations"] if e["staff"]["username"] == "fq.h1"]
    assert len(escalations) == 1
    async with server.services.db.connect() as conn:
        sms = list(
            await conn.execute(
                sa.select(s.sms_outbox).where(s.sms_outbox.c.template == "escalation")
            )
        )
        reminders = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(s.sms_outbox)
            .where(s.sms_outbox.c.template == "reminder")
        )
    assert [r.phone for r in sms] == ["13800000031"], "to xx.sup"
    assert reminders == 8, "one reminder per on-duty staff member per call"

    # through the real Aliyun SDK to the double, which checks every signature: the first
    # reminder to each phone at once (later ones are coalesced), and the escalation
    def sent(template: str) -> list[str]:
        code = aliyun.template_codes[template]
        return sorted(m.phone for m in aliyun.messages if m.template_code == code)

    for _ in range(200):
        if sent("escalation") and len(set(sent("reminder"))) == 2:
            break
        await aliyun.wait_for_requests(aliyun.requests + 1, within=10)
    assert sent("escalation") == ["13800000031"]
    assert set(sent("reminder")) == {"13800000011", "13800000012"}
    assert aliyun.rejected == [], "every request carried a valid signature"
