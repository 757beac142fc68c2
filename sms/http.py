"""The SMS part of the app: the worker's lifecycle, delivery receipts, the admin view.

``setup(app)`` is the part ``web.app.default_parts()`` lists. Signaling reaches the worker
through ``app[SMS_WORKER]`` to call ``notify()`` after it commits an ``outbox.enqueue``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from sms import outbox
from sms.outbox import Entry
from sms.providers import build_provider
from sms.worker import SmsWorker
from tongban.errors import InvalidInput
from tongban.masking import mask_phone
from web.http import ok, require_role
from web.state import SERVICES, SETTINGS

log = logging.getLogger(__name__)

SMS_WORKER = web.AppKey("sms_worker", SmsWorker)
SHANGHAI = ZoneInfo("Asia/Shanghai")
RECEIPTS_PATH = "/api/sms/receipts"


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_worker_ctx)
    app.router.add_post(RECEIPTS_PATH, receive_receipts)
    app.router.add_get("/api/admin/sms", admin_list)


def node_id() -> str:
    """Who holds a claim: readable in the admin view, unique per process start."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    # runs after the services context (registered first by create_app)
    services = app[SERVICES]
    provider = build_provider(app[SETTINGS])
    worker = SmsWorker(services.db, provider, services.clock, services.metrics, node_id())
    app[SMS_WORKER] = worker
    worker.start()
    log.info("SMS worker %s started (%s provider)", worker.node_id, app[SETTINGS].sms_provider)
    try:
        yield
    finally:
        await worker.stop()


# --- delivery receipts (Aliyun SmsReport, pushed over HTTP) ------------------------------------


class SmsReport(BaseModel):
    """One receipt. Aliyun may add fields; they are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    phone_number: str
    success: bool
    biz_id: str
    out_id: str | None = None
    err_code: str | None = None
    err_msg: str | None = None
    report_time: str | None = None
    send_time: str | None = None


_REPORTS = TypeAdapter(list[SmsReport])


def parse_reports(data: Any) -> list[SmsReport]:
    if not isinstance(data, list):
        raise InvalidInput("回执必须是 JSON 数组", code="invalid_input")
    try:
        reports = _REPORTS.validate_python(data)
    except ValidationError as err:
        problems = [
            {
                "field": ".".join(str(p) for p in e["loc"]) or "body",
                "problem": e["msg"],
            }
            for e in err.errors(include_url=False, include_input=False)
        ]
        raise InvalidInput("回执字段有误", code="invalid_input", fields=problems) from None
    for report in reports:
        if not report.biz_id or not report.phone_number:
            raise InvalidInput("回执缺少 biz_id 或 phone_number", code="invalid_input")
    return reports


def reported_at(text: str | None) -> datetime | None:
    """``2017-02-02 22:23:24`` in Beijing time, as Aliyun writes it; None if unreadable."""
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI).astimezone(UTC)
    except ValueError:
        return None


async def receive_receipts(request: web.Request) -> web.Response:
    """Aliyun posts batches of receipts here and sends them again unless it gets
    ``{"code": 0}``; duplicates are expected and change nothing."""
    services = request.app[SERVICES]
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidInput("请求内容不是有效的 JSON", code="invalid_json") from err
    reports = parse_reports(data)
    now = services.clock.now()
    fresh = 0
    async with services.db.begin() as conn:
        for report in reports:
            fresh += await outbox.record_receipt(
                conn,
                biz_id=report.biz_id,
                phone=report.phone_number,
                success=report.success,
                err_code=report.err_code,
                out_id=report.out_id,
                now=now,
                reported_at=reported_at(report.report_time),
            )
    for report in reports:
        if not report.success:
            log.warning(
                "SMS %s to %s not delivered: %s",
                report.biz_id,
                mask_phone(report.phone_number),
                report.err_code,
            )
    services.metrics.sms.labels("receipt").inc(fresh)
    return web.json_response({"code": 0, "msg": "接收成功"})


# --- the administrator's view --------------------------------------------------------------------


def entry_view(entry: Entry) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": entry.id,
        "template": entry.template,
        "phone": mask_phone(entry.phone),
        "account_id": entry.account_id,
        "dedupe_key": entry.dedupe_key,
        "state": entry.state,
        "attempts": entry.attempts,
        "last_error": entry.last_error,
        "created_at": iso(entry.created_at),
        "next_attempt_at": iso(entry.next_attempt_at),
        "sent_at": iso(entry.sent_at),
        "delivered_at": iso(entry.delivered_at),
        "biz_id": entry.biz_id,
    }


async def admin_list(request: web.Request) -> web.Response:
    """``?state=failed`` (the default): what the provider refused or what may not have gone
    out; an administrator fixes the number, template or balance and follows up by phone."""
    await require_role(request, "admin")
    state = request.query.get("state", "failed")
    if state not in outbox.STATES:
        raise InvalidInput(f"state 必须是 {', '.join(outbox.STATES)} 之一", code="invalid_input")
    services = request.app[SERVICES]
    async with services.db.connect() as conn:
        entries = await outbox.list_entries(conn, state=state)
        failed = await outbox.count_in_state(conn, "failed")
    return ok({"entries": [entry_view(e) for e in entries], "needing_attention": failed})
