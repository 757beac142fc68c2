"""R4 and R11 at the HTTP edge: delivery receipts from Aliyun (idempotent), and the
administrator's list of messages Aliyun refused, phone numbers masked."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from sms import outbox
from sms.templates import escalation_params, reminder_params
from storage import schema as s
from tests.support.aliyun_double import AliyunDouble, Reply

from .conftest import all_entries, enqueue, eventually

PHONE = "13800000012"


async def test_a_refused_number_fails_shows_in_the_admin_list_and_the_metric(
    sms_app: Any, double: AliyunDouble, clock: Any
) -> None:
    server = await sms_app(**double.settings())
    double.then(Reply("isv.MOBILE_NUMBER_ILLEGAL"))
    params = reminder_params(window="住建窗口", hall="郑州市政务服务大厅")
    await enqueue(server.services.db, "reminder:c9:12", PHONE, "reminder", params, clock.now())
    server.worker.notify()

    async def failed() -> Any:
        (entry,) = await all_entries(server.services.db)
        return entry if entry.state == "failed" else None

    entry = await eventually(failed, what="the entry failed")
    assert entry.last_error is not None and entry.last_error.startswith("isv.MOBILE_NUMBER_ILLEGAL")
    assert entry.attempts == 1, "isv.* is not retried"

    await server.login("fq.h1")
    resp = await server.client.get("/api/admin/sms?state=failed")
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"

    await server.login("admin")
    resp = await server.client.get("/api/admin/sms?state=failed")
    raw = await resp.text()
    assert resp.status == 200, raw
    assert PHONE not in raw, "phone masked (R11)"
    body = await resp.json()
    assert body["needing_attention"] == 1
    (shown,) = body["entries"]
    assert shown["id"] == entry.id and shown["phone"] == "138****0012"
    assert shown["last_error"].startswith("isv.MOBILE_NUMBER_ILLEGAL")
    resp = await server.client.get("/api/admin/sms?state=whatever")
    assert resp.status == 400

    resp = await server.client.get("/metrics")
    metrics = await resp.text()
    assert "tongban_sms_needing_attention 1.0" in metrics
    assert 'tongban_sms_total{result="failed"} 1.0' in metrics


async def test_the_number_limit_backs_off_without_an_administrator(
    sms_app: Any, double: AliyunDouble, clock: Any
) -> None:
    server = await sms_app(**double.settings())
    double.then(Reply("isv.BUSINESS_LIMIT_CONTROL"), Reply("Throttling.User"))
    for i in (1, 2):
        params = escalation_params(
            name=f"员工{i}", agency="封丘县政务服务和大数据管理局", month="2026-03", count=4
        )
        await enqueue(
            server.services.db,
            f"escalation:{i}",
            f"1380000005{i}",
            "escalation",
            params,
            clock.now(),
        )
    server.worker.notify()

    async def both_back() -> Any:
        entries = await all_entries(server.services.db)
        return entries if all(e.state == "pending" and e.attempts == 1 for e in entries) else None

    limited, throttled = sorted(
        await eventually(both_back, what="both pending again"),
        key=lambda e: not (e.last_error or "").startswith("isv"),
    )
    now = clock.now()
    assert (limited.last_error or "").startswith("isv.BUSINESS_LIMIT_CONTROL")
    assert (limited.next_attempt_at - now).total_seconds() >= 4 * 60, "a long pause"
    assert (throttled.last_error or "").startswith("Throttling.User")
    assert 10 <= (throttled.next_attempt_at - now).total_seconds() <= 31
    assert server.services.metrics.sms_attention._value.get() == 0


async def test_receipts_mark_messages_delivered_once(
    sms_app: Any, double: AliyunDouble, clock: Any
) -> None:
    server = await sms_app(**double.settings())
    db = server.services.db
    async with db.begin() as conn:  # one transaction: the worker sees both at once
        for call in ("c1", "c2"):
            await outbox.enqueue(
                conn,
                dedupe_key=f"reminder:{call}:12",
                phone=PHONE,
                template="reminder",
                params=reminder_params(window="住建窗口", hall="郑州市政务服务大厅"),
                now=clock.now(),
            )
    server.worker.notify()
    (message,) = await double.wait_for_messages(1)

    async def sent() -> Any:
        entries = await all_entries(db)
        return entries if all(e.state == "sent" for e in entries) else None

    await eventually(sent, what="both reminders sent in one message")
    report = [double.receipt(message)]
    for _ in range(2):  # Aliyun pushes again when unsure: the second changes nothing
        resp = await server.client.post("/api/sms/receipts", json=report)
        assert resp.status == 200 and await resp.json() == {"code": 0, "msg": "接收成功"}
    entries = await all_entries(db)
    assert all(e.delivered_at is not None for e in entries), "both coalesced entries delivered"
    async with db.connect() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(s.sms_receipts))
    assert count == 1
    assert server.services.metrics.sms.labels("receipt")._value.get() == 1


async def test_a_failed_delivery_is_recorded_not_marked_delivered(
    sms_app: Any, double: AliyunDouble, clock: Any
) -> None:
    server = await sms_app(**double.settings())
    params = escalation_params(
        name="王五", agency="封丘县政务服务和大数据管理局", month="2026-03", count=4
    )
    await enqueue(server.services.db, "escalation:x", PHONE, "escalation", params, clock.now())
    server.worker.notify()
    (message,) = await double.wait_for_messages(1)
    await eventually(lambda: _state_is(server, "sent"), what="the entry sent")
    resp = await server.client.post(
        "/api/sms/receipts", json=[double.receipt(message, success=False)]
    )
    assert resp.status == 200
    (entry,) = await all_entries(server.services.db)
    assert entry.delivered_at is None and entry.last_error == "delivery failed: MK:0001"


async def _state_is(server: Any, state: str) -> bool:
    return all(e.state == state for e in await all_entries(server.services.db))


async def test_malformed_receipts_get_a_json_error(sms_app: Any, double: AliyunDouble) -> None:
    server = await sms_app(**double.settings())
    for body, code in (
        (b"not json", "invalid_json"),
        (b'{"biz_id": "1"}', "invalid_input"),
        (b'[{"phone_number": "13800000012", "success": "maybe", "biz_id": "1"}]', "invalid_input"),
        (b'[{"success": true, "biz_id": "1"}]', "invalid_input"),
    ):
        resp = await server.client.post(
            "/api/sms/receipts", data=body, headers={"Content-Type": "application/json"}
        )
        assert resp.status == 400, body
        assert (await resp.json())["error"]["code"] == code
