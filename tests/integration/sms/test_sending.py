"""R4: the SMS reminder goes out through Aliyun (the real SDK against a double that checks the
signature), exactly once per outbox entry, across restarts, outages and several nodes."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from sms import outbox
from sms.providers import LogProvider
from sms.templates import escalation_params, reminder_params
from tests.support.aliyun_double import AliyunDouble, Reply

from .conftest import all_entries, enqueue, eventually

PHONE = "13800000011"


async def test_the_app_sends_a_signed_request_with_the_configured_template(
    sms_app: Any, double: AliyunDouble, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="aliyunsdkcore")  # it logs the request parameters
    server = await sms_app(**double.settings())
    params = reminder_params(window="住房和城乡建设窗口", hall="郑州市政务服务大厅")
    await enqueue(server.services.db, "reminder:c1:11", PHONE, "reminder", params, clock.now())
    server.worker.notify()
    (message,) = await double.wait_for_messages(1)
    assert double.rejected == [], "the double checked the SDK's signature and accepted it"
    assert message.phone == PHONE and message.sign_name == double.sign_name
    assert message.template_code == double.template_codes["reminder"]
    assert message.params == {**params, "count": "1"}

    async def sent() -> Any:
        (entry,) = await all_entries(server.services.db)
        return entry if entry.state == "sent" else None

    entry = await eventually(sent, what="the entry marked sent")
    assert message.out_id == str(entry.id) and entry.biz_id == message.biz_id
    assert entry.sent_at is not None and entry.attempts == 1
    assert server.services.metrics.sms.labels("sent")._value.get() == 1
    assert "138****0011" in caplog.text and PHONE not in caplog.text, "R11: masked in logs"


async def test_the_log_provider_is_the_default_and_masks_the_phone(
    sms_app: Any, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = await sms_app()
    assert isinstance(server.worker._provider, LogProvider)
    params = escalation_params(
        name="王五", agency="封丘县政务服务和大数据管理局", month="2026-03", count=4
    )
    await enqueue(server.services.db, "escalation:log", PHONE, "escalation", params, clock.now())
    server.worker.notify()

    async def sent() -> Any:
        (entry,) = await all_entries(server.services.db)
        return entry if entry.state == "sent" else None

    entry = await eventually(sent, what="the entry marked sent")
    assert entry.biz_id is not None and entry.biz_id.startswith("log-")
    assert "138****0011" in caplog.text and PHONE not in caplog.text


async def test_pending_entries_are_sent_once_after_a_restart(
    sms_app: Any, double: AliyunDouble, clock: Any
) -> None:
    await double.stop()  # the first server only gets refused connections
    first = await sms_app(**double.settings())
    db = first.services.db
    for i in (1, 2):
        params = escalation_params(
            name=f"员工{i}", agency="封丘县政务服务和大数据管理局", month="2026-03", count=4
        )
        await enqueue(db, f"escalation:{i}", f"1380000002{i}", "escalation", params, clock.now())
    first.worker.notify()

    async def retried() -> bool:
        entries = await all_entries(db)
        return all(e.state == "pending" and e.attempts == 1 for e in entries)

    await eventually(retried, what="both entries scheduled for a retry")
    await first.client.close()  # the server stops; its worker with it

    await double.start()
    second = await sms_app(**double.settings())
    params = escalation_params(
        name="员工3", agency="封丘县政务服务和大数据管理局", month="2026-03", count=5
    )
    await enqueue(
        second.services.db, "escalation:3", "13800000023", "escalation", params, clock.now()
    )
    clock.advance(minutes=1)  # past the retry pause
    second.worker.notify()
    messages = await double.wait_for_messages(3)

    async def all_sent() -> bool:
        return all(e.state == "sent" for e in await all_entries(second.services.db))

    await eventually(all_sent, what="every entry sent")
    assert sorted(m.phone for m in messages) == ["13800000021", "13800000022", "13800000023"]
    assert len(double.messages) == 3


async def test_an_outage_delays_messages_and_loses_none(
    make_node: Any, double: AliyunDouble, clock: Any
) -> None:
    node = make_node()
    await double.stop()
    for i in range(3):
        params = escalation_params(
            name=f"员工{i}", agency="封丘县政务服务和大数据管理局", month="2026-03", count=4
        )
        await enqueue(
            node.db, f"escalation:{i}", f"1390000000{i}", "escalation", params, clock.now()
        )
    node.worker.start()
    node.worker.notify()

    async def failed_attempts(n: int) -> bool:
        entries = await all_entries(node.db)
        return all(e.state == "pending" and e.attempts == n for e in entries)

    await eventually(lambda: failed_attempts(1), what="first attempts refused")
    (entry, *_) = await all_entries(node.db)
    assert entry.last_error is not None and entry.last_error.startswith("SDK.HttpError")
    assert "13900000000" not in entry.last_error, "no phone number in the stored error"
    assert entry.next_attempt_at >= clock.now() + timedelta(seconds=14)

    clock.advance(seconds=31)  # still down: a second attempt, a longer pause
    node.worker.notify()
    await eventually(lambda: failed_attempts(2), what="second attempts refused")
    assert double.messages == []

    await double.start()
    clock.advance(seconds=61)
    node.worker.notify()
    await double.wait_for_messages(3)

    async def all_sent() -> bool:
        return all(e.state == "sent" for e in await all_entries(node.db))

    await eventually(all_sent, what="every entry sent")
    assert len(double.messages) == 3
    assert node.metrics.sms.labels("retry")._value.get() == 6


async def test_two_nodes_racing_never_send_an_entry_twice(
    make_node: Any, double: AliyunDouble, clock: Any
) -> None:
    double.default = Reply(delay=0.05)  # keep both nodes' sends overlapping
    a, b = make_node("a"), make_node("b")
    now = clock.now()
    async with a.db.begin() as conn:
        for i in range(24):
            await outbox.enqueue(
                conn,
                dedupe_key=f"escalation:{i}",
                phone=f"1370000{i:04d}",
                template="escalation",
                params=escalation_params(
                    name=f"员工{i}", agency="封丘县政务服务和大数据管理局", month="2026-03", count=4
                ),
                now=now,
            )
        for i in range(6):  # three reminders each to two phones
            await outbox.enqueue(
                conn,
                dedupe_key=f"reminder:call{i}:{i % 2}",
                phone=f"1360000000{i % 2}",
                template="reminder",
                params=reminder_params(window="住建窗口", hall="郑州市政务服务大厅"),
                now=now,
            )
    for node in (a, b):  # both engines connected, so neither starts late
        assert len(await all_entries(node.db)) == 30
    a.worker.start()
    b.worker.start()
    a.worker.notify()
    b.worker.notify()

    async def all_sent() -> bool:
        return all(e.state == "sent" for e in await all_entries(a.db))

    await eventually(all_sent, within=20, what="every entry sent")
    entries = await all_entries(a.db)
    out_ids = Counter(m.out_id for m in double.messages)
    assert max(out_ids.values()) == 1, "one request per OutId"
    by_biz = {m.biz_id: m for m in double.messages}
    assert {e.biz_id for e in entries} == set(by_biz), "every message accounts for entries"
    escalations = [m for m in double.messages if m.template_code.endswith("2")]
    assert len(escalations) == 24
    waiting = Counter()
    for m in double.messages:
        if m.template_code == double.template_codes["reminder"]:
            waiting[m.phone] += int(m.params["count"])
    assert waiting == {"13600000000": 3, "13600000001": 3}, "each reminder counted once"
    assert {e.claimed_by for e in entries} == {None}, "no claim left behind"
    sent_by = [n.metrics.sms.labels("sent")._value.get() for n in (a, b)]
    assert all(sent_by) and sum(sent_by) == len(double.messages), "both nodes took part"


async def test_a_timed_out_send_is_not_repeated_once_its_receipt_is_in(
    make_node: Any, double: AliyunDouble, clock: Any
) -> None:
    node = make_node(timeout=0.3)
    double.then(Reply(delay=0.6))  # Aliyun takes it, but answers after the client gave up
    params = escalation_params(
        name="王五", agency="封丘县政务服务和大数据管理局", month="2026-03", count=4
    )
    await enqueue(node.db, "escalation:late", PHONE, "escalation", params, clock.now())
    node.worker.start()
    (message,) = await double.wait_for_messages(1)

    async def released() -> Any:
        (entry,) = await all_entries(node.db)
        return entry if entry.state == "pending" and entry.attempts == 1 else None

    entry = await eventually(released, what="the timed-out entry back to pending")
    assert entry.last_error is not None and "timed out" in entry.last_error
    assert entry.next_attempt_at >= clock.now() + timedelta(seconds=59), "waits for a receipt"

    receipt = double.receipt(message)
    async with node.db.begin() as conn:
        await outbox.record_receipt(
            conn,
            biz_id=receipt["biz_id"],
            phone=receipt["phone_number"],
            success=True,
            err_code="DELIVERED",
            out_id=receipt["out_id"],
            now=clock.now(),
        )
    clock.advance(minutes=2)
    node.worker.notify()

    async def settled() -> Any:
        (entry,) = await all_entries(node.db)
        return entry if entry.state == "sent" else None

    entry = await eventually(settled, what="the entry settled by its receipt")
    assert entry.biz_id == message.biz_id and entry.delivered_at is not None
    assert double.requests == 1, "not sent a second time"


async def test_an_entry_left_sending_by_a_dead_node_is_not_sent_again(
    make_node: Any, double: AliyunDouble, clock: Any
) -> None:
    node = make_node()
    now = clock.now()
    for key in ("escalation:dead1", "escalation:dead2"):
        params = escalation_params(
            name="王五", agency="封丘县政务服务和大数据管理局", month="2026-03", count=4
        )
        await enqueue(node.db, key, PHONE, "escalation", params, now)
    async with node.db.begin() as conn:
        claimed = await outbox.claim_due(
            conn, node_id="dead", now=now, until=now + timedelta(seconds=30), limit=2
        )
        assert len(claimed) == 2
        await outbox.record_receipt(  # the first one did reach the phone
            conn,
            biz_id="123^0",
            phone=PHONE,
            success=True,
            err_code="DELIVERED",
            out_id=str(claimed[0].id),
            now=now,
        )
    clock.advance(seconds=31)  # the dead node's claim runs out
    node.worker.start()

    async def settled() -> Any:
        entries = await all_entries(node.db)
        return entries if all(e.state != "sending" for e in entries) else None

    first, second = await eventually(settled, what="the stale claims settled")
    assert (first.state, first.biz_id, first.delivered_at is not None) == ("sent", "123^0", True)
    assert second.state == "failed" and second.last_error is not None
    assert second.last_error.startswith(outbox.OUTCOME_UNKNOWN)
    assert double.requests == 0

    async def gauge() -> bool:
        return bool(node.metrics.sms_attention._value.get() == 1)

    await eventually(gauge, what="the needing-attention gauge at 1")


async def test_reminders_to_one_phone_are_coalesced_into_one_message(
    sms_app: Any, double: AliyunDouble, clock: Any
) -> None:
    server = await sms_app(**double.settings())
    db = server.services.db
    async with db.begin() as conn:
        for call, hall in (
            ("c1", "郑州市政务服务大厅"),
            ("c2", "郑州市政务服务大厅"),
            ("c3", "洛阳市政务服务大厅"),
        ):
            await outbox.enqueue(
                conn,
                dedupe_key=f"reminder:{call}:11",
                phone=PHONE,
                template="reminder",
                params=reminder_params(window="住建窗口", hall=hall),
                now=clock.now(),
                account_id=None,
            )
    server.worker.notify()
    (message,) = await double.wait_for_messages(1)
    assert message.params == {"window": "住建窗口", "hall": "郑州市政务服务大厅等", "count": "3"}

    async def sent() -> Any:
        entries = await all_entries(db)
        return entries if all(e.state == "sent" for e in entries) else None

    entries = await eventually(sent, what="all three marked sent")
    assert {e.biz_id for e in entries} == {message.biz_id}

    # a fourth call goes overdue a minute later: held, then sent on its own after the window
    clock.advance(minutes=1)
    params = reminder_params(window="住建窗口", hall="郑州市政务服务大厅")
    await enqueue(db, "reminder:c4:11", PHONE, "reminder", params, clock.now())
    server.worker.notify()

    async def held() -> Any:
        entry = (await all_entries(db))[-1]
        return entry if entry.next_attempt_at > clock.now() else None

    entry = await eventually(held, what="the fourth reminder held")
    assert entry.state == "pending" and len(double.messages) == 1
    clock.advance(minutes=2)
    server.worker.notify()
    messages = await double.wait_for_messages(2)
    assert messages[1].params["count"] == "1"
    await asyncio.wait_for(eventually(sent, what="all four sent"), 10)
