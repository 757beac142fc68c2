"""A stand-in for Aliyun's SMS API (dysmsapi 2017-05-25, SendSms) on 127.0.0.1.

It checks what the real service checks first, the request signature (RPC style, HMAC-SHA1,
SignatureVersion 1.0), computed independently of the SDK from the documented algorithm, then
the SendSms parameters, and records every message it accepts. Tests script its answers:
``OK`` (the default), an error code, a slow answer beyond the client's timeout, or no server at
all (``await stop()``: connection refused; ``await start()`` comes back on the same port).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

ACCESS_KEY_ID = "LTAI-test-key"
ACCESS_KEY_SECRET = "test-secret-9f8e7d"
SIGN_NAME = "通办测试"
TEMPLATES = {"reminder": "SMS_100000001", "escalation": "SMS_100000002"}
MOBILE = re.compile(r"^1\d{10}$")

# HTTP status Aliyun answers with for each error code (business errors come with 200)
STATUS = {
    "Throttling.User": 400,
    "Throttling.Api": 400,
    "ServiceUnavailable": 503,
    "InternalError": 500,
    "SignatureDoesNotMatch": 400,
    "InvalidAccessKeyId.NotFound": 404,
    "SignatureNonceUsed": 400,
    "InvalidTimeStamp.Expired": 400,
    "MissingParameter": 400,
}


def percent_encode(value: str) -> str:
    """RFC 3986: everything but A-Z a-z 0-9 - _ . ~ is %XX of its UTF-8 bytes."""
    return quote(value, safe="~")


def string_to_sign(method: str, params: dict[str, str]) -> str:
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"


def sign(method: str, params: dict[str, str], secret: str) -> str:
    digest = hmac.new(
        (secret + "&").encode(), string_to_sign(method, params).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Reply:
    """One scripted answer: ``code`` (``OK`` or an error code), after ``delay`` seconds."""

    code: str = "OK"
    delay: float = 0.0
    message: str = ""


@dataclass(frozen=True)
class ReceivedSms:
    phone: str
    sign_name: str
    template_code: str
    params: dict[str, str]
    out_id: str
    biz_id: str
    at: datetime


@dataclass
class AliyunDouble:
    access_key_id: str = ACCESS_KEY_ID
    access_key_secret: str = ACCESS_KEY_SECRET
    sign_name: str = SIGN_NAME
    template_codes: dict[str, str] = field(default_factory=lambda: dict(TEMPLATES))
    messages: list[ReceivedSms] = field(default_factory=list)
    requests: int = 0
    rejected: list[str] = field(default_factory=list)  # error codes answered, in order
    default: Reply = field(default_factory=Reply)
    _script: deque[Reply] = field(default_factory=deque)
    _nonces: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    _port: int = 0
    _changed: asyncio.Condition | None = None

    # --- control ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def settings(self) -> dict[str, Any]:
        """Settings overrides that point the app's Aliyun provider here."""
        from tongban.settings import Secret

        return {
            "sms_provider": "aliyun",
            "aliyun_access_key_id": self.access_key_id,
            "aliyun_access_key_secret": Secret(self.access_key_secret),
            "aliyun_sign_name": self.sign_name,
            "aliyun_template_reminder": self.template_codes["reminder"],
            "aliyun_template_escalation": self.template_codes["escalation"],
            "aliyun_endpoint": self.url,
        }

    def then(self, *replies: Reply) -> None:
        """Answer the next requests with these, in order; then with ``default``."""
        self._script.extend(replies)

    async def start(self) -> None:
        if self._changed is None:
            self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        if not self._port:
            server = site._server
            assert server is not None
            self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Close the port: clients get "connection refused" until ``start()``."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for_messages(self, count: int, within: float = 10.0) -> list[ReceivedSms]:
        """Until ``count`` messages were accepted (TimeoutError after ``within`` seconds)."""
        assert self._changed is not None
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.messages) >= count)
        return list(self.messages)

    async def wait_for_requests(self, count: int, within: float = 10.0) -> None:
        """Until ``count`` requests were answered, whatever the answer."""
        assert self._changed is not None
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: self.requests >= count)

    def receipt(self, message: ReceivedSms, *, success: bool = True) -> dict[str, Any]:
        """The SmsReport Aliyun would push for ``message``."""
        now = datetime.now(UTC) + timedelta(hours=8)
        return {
            "phone_number": message.phone,
            "send_time": now.strftime("%Y-%m-%d %H:%M:%S"),
            "report_time": now.strftime("%Y-%m-%d %H:%M:%S"),
            "success": success,
            "err_code": "DELIVERED" if success else "MK:0001",
            "err_msg": "用户接收成功" if success else "用户关机",
            "sms_size": "1",
            "biz_id": message.biz_id,
            "out_id": message.out_id,
        }

    # --- the API ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        if request.can_read_body:
            form = await request.post()
            params.update({k: str(v) for k, v in form.items()})
        request_id = str(uuid.uuid4()).upper()
        self.requests += 1
        reply = self._script.popleft() if self._script else self.default
        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
            refusal = self._check_signature(request.method, params)
            if refusal is not None:
                return self._error(refusal[0], refusal[1], request_id)
            if reply.code != "OK":
                return self._error(reply.code, reply.message or reply.code, request_id)
            invalid = self._check_send_sms(params)
            if invalid is not None:
                return self._error(invalid[0], invalid[1], request_id)
            biz_id = f"{uuid.uuid4().int % 10**15:015d}^0"
            self.messages.append(
                ReceivedSms(
                    phone=params["PhoneNumbers"],
                    sign_name=params["SignName"],
                    template_code=params["TemplateCode"],
                    params=json.loads(params["TemplateParam"]),
                    out_id=params.get("OutId", ""),
                    biz_id=biz_id,
                    at=datetime.now(UTC),
                )
            )
            return web.json_response(
                {"Message": "OK", "RequestId": request_id, "Code": "OK", "BizId": biz_id}
            )
        finally:
            await self._notify()

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    def _error(self, code: str, message: str, request_id: str) -> web.Response:
        self.rejected.append(code)
        return web.json_response(
            {"Message": message, "RequestId": request_id, "Code": code},
            status=STATUS.get(code, 200),  # isv.* business errors come with HTTP 200
        )

    def _check_signature(self, method: str, params: dict[str, str]) -> tuple[str, str] | None:
        for name in (
            "AccessKeyId",
            "Signature",
            "SignatureMethod",
            "SignatureVersion",
            "SignatureNonce",
            "Timestamp",
            "Action",
            "Version",
        ):
            if not params.get(name):
                return "MissingParameter", f"{name} is mandatory for this action."
        if params["AccessKeyId"] != self.access_key_id:
            return "InvalidAccessKeyId.NotFound", "Specified access key is not found."
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            return "SignatureDoesNotMatch", "Unsupported signature method or version."
        try:
            stamp = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return "InvalidTimeStamp.Format", "Specified time stamp is not valid."
        if abs(stamp.replace(tzinfo=UTC) - datetime.now(UTC)) > timedelta(minutes=15):
            return "InvalidTimeStamp.Expired", "Specified time stamp or date header is expired."
        expected = sign(method, params, self.access_key_secret)
        if not hmac.compare_digest(expected, params["Signature"]):
            # the SDK splits this message at ':' and compares its second part with its own
            # string to sign; without the colon it raises IndexError instead of an error code
            return (
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. "
                f"server string to sign is:{string_to_sign(method, params)}",
            )
        if params["SignatureNonce"] in self._nonces:
            return "SignatureNonceUsed", "Specified signature nonce was used already."
        self._nonces.add(params["SignatureNonce"])
        if params["Action"] != "SendSms" or params["Version"] != "2017-05-25":
            return "InvalidAction.NotFound", "Specified api is not found."
        return None

    def _check_send_sms(self, params: dict[str, str]) -> tuple[str, str] | None:
        phone = params.get("PhoneNumbers", "")
        if not MOBILE.match(phone):
            return "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号"
        if params.get("SignName") != self.sign_name:
            return "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名"
        if params.get("TemplateCode") not in self.template_codes.values():
            return "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板"
        try:
            values = json.loads(params.get("TemplateParam", "{}"))
        except json.JSONDecodeError:
            return "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值"
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            return "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值"
        if any(len(v) > 35 for v in values.values()):
            return "isv.PARAM_LENGTH_LIMIT", "参数超出长度限制"
        return None
