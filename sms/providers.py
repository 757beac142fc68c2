"""Who actually sends an SMS: Aliyun (the real SDK) in production, the log in development.

The worker sees only ``SmsProvider``. Every failure becomes a ``ProviderError`` that says what
to do next, so the retry rules live in one place (``classify``) and can be tested without a
network.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from tongban.errors import TongbanError
from tongban.masking import mask_phone
from tongban.settings import Secret, Settings

log = logging.getLogger(__name__)

REGION = "cn-hangzhou"
LIMIT_CODE = "isv.BUSINESS_LIMIT_CONTROL"


@dataclass(frozen=True)
class SendResult:
    biz_id: str
    request_id: str


class ProviderError(TongbanError):
    """The provider did not take the message.

    ``retryable``: try again after a backoff (network, throttling, provider trouble).
    ``backoff``: not an error as such, but the per-number frequency limit: wait long.
    Neither: permanent (bad number, template, signature, balance, credentials), an
    administrator must look. ``maybe_sent``: the request may have reached the provider
    (a read timeout, a dropped connection), so a retry could send a second message.
    """

    code = "sms_provider_error"
    status = 502

    def __init__(
        self,
        code: str,
        message: str,
        retryable: bool,
        backoff: bool = False,
        *,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable
        self.backoff = backoff
        self.maybe_sent = maybe_sent

    @property
    def needs_attention(self) -> bool:
        return not self.retryable and not self.backoff

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class SmsProvider(Protocol):
    async def send(
        self, *, phone: str, template: str, params: dict[str, str], out_id: str
    ) -> SendResult:
        """Hand one message to the provider; raise ``ProviderError`` if it was not taken."""
        ...


# --- classification (pure) -----------------------------------------------------------------

# requests' words for "the connection was never made": nothing can have been sent.
_NOT_CONNECTED = ("NewConnectionError", "Connection refused", "ConnectTimeout", "connect timeout")
_SERVER_TROUBLE = ("ServiceUnavailable", "InternalError", "SDK.UnknownServerError")


def classify(code: str, message: str = "", http_status: int | None = None) -> ProviderError:
    """What a non-OK answer or a transport failure means for the outbox."""
    text = scrub(message)[:400]
    if code == LIMIT_CODE:
        return ProviderError(code, text, retryable=False, backoff=True)
    if code.startswith("isv."):
        return ProviderError(code, text, retryable=False)
    if code.startswith("Throttling"):
        return ProviderError(code, text, retryable=True)
    if code == "SDK.HttpError":
        maybe_sent = not any(word in message for word in _NOT_CONNECTED)
        return ProviderError(code, text, retryable=True, maybe_sent=maybe_sent)
    if (http_status is not None and http_status >= 500) or code in _SERVER_TROUBLE:
        return ProviderError(code, text, retryable=True, maybe_sent=True)
    # credentials, signature, missing parameters, an unknown SDK failure: retrying is futile
    return ProviderError(code, text, retryable=False)


# --- development -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedSms:
    phone: str
    template: str
    params: dict[str, str]
    out_id: str
    biz_id: str


class LogProvider:
    """Development: writes what would be sent to the log (phone masked) and keeps the last
    messages in ``sent`` for a developer or a test to look at."""

    def __init__(self, keep: int = 1000) -> None:
        self.sent: deque[LoggedSms] = deque(maxlen=keep)

    async def send(
        self, *, phone: str, template: str, params: dict[str, str], out_id: str
    ) -> SendResult:
        biz_id = f"log-{uuid.uuid4().hex[:16]}"
        self.sent.append(LoggedSms(phone, template, dict(params), out_id, biz_id))
        log.info(
            "SMS (log provider, not sent) to %s: template %s, params %s, out_id %s",
            mask_phone(phone),
            template,
            json.dumps(params, ensure_ascii=False),
            out_id,
        )
        return SendResult(biz_id=biz_id, request_id=biz_id)


# --- Aliyun ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    scheme: str  # http | https


def parse_endpoint(url: str) -> Endpoint:
    """``https://dysmsapi.aliyuncs.com`` or ``http://127.0.0.1:9000`` as the SDK wants it."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"TONGBAN_ALIYUN_ENDPOINT: not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Endpoint(host=parts.hostname, port=port, scheme=parts.scheme)


_MOBILE = re.compile(r"(?<!\d)(1\d{2})\d{4}(\d{4})(?!\d)")
_QUERY = re.compile(r"\?[^\s'\"]*")


def scrub(text: str) -> str:
    """No phone number and no signed query string (the SDK puts the whole request URL, with
    the phone and the access key id, into its connection errors) in a log line or an error."""
    return _MOBILE.sub(r"\1****\2", _QUERY.sub("?…", text))


class MaskPhones(logging.Filter):
    """The SDK logs request parameters and URLs (PhoneNumbers included): scrub them."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = scrub(text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


def _mask_sdk_logs() -> None:
    for name in ("aliyunsdkcore.client", "aliyunsdkcore.http.http_response"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskPhones) for f in logger.filters):
            logger.addFilter(MaskPhones())


class AliyunProvider:
    """Aliyun SMS (dysmsapi 2017-05-25, ``SendSms``) through the official SDK.

    The SDK is blocking (requests), so each call runs in a thread. Its own retries are off:
    SendSms is not idempotent and the outbox decides about retries, with the receipts at hand.
    """

    def __init__(
        self,
        *,
        access_key_id: str,
        access_key_secret: Secret,
        sign_name: str,
        template_codes: Mapping[str, str],
        endpoint: str,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
    ) -> None:
        from aliyunsdkcore.client import AcsClient

        self._endpoint = parse_endpoint(endpoint)
        self._sign_name = sign_name
        self._template_codes = dict(template_codes)
        self._client = AcsClient(
            access_key_id,
            access_key_secret.reveal(),
            REGION,
            auto_retry=False,
            port=self._endpoint.port,
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
        _mask_sdk_logs()

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> AliyunProvider:
        assert settings.aliyun_access_key_id and settings.aliyun_access_key_secret
        assert settings.aliyun_sign_name
        assert settings.aliyun_template_reminder and settings.aliyun_template_escalation
        return cls(
            access_key_id=settings.aliyun_access_key_id,
            access_key_secret=settings.aliyun_access_key_secret,
            sign_name=settings.aliyun_sign_name,
            template_codes={
                "reminder": settings.aliyun_template_reminder,
                "escalation": settings.aliyun_template_escalation,
            },
            endpoint=settings.aliyun_endpoint,
            **options,
        )

    async def send(
        self, *, phone: str, template: str, params: dict[str, str], out_id: str
    ) -> SendResult:
        code = self._template_codes.get(template)
        if code is None:
            raise ProviderError("sms_unknown_template", f"no template code for {template!r}", False)
        return await asyncio.to_thread(self._send_blocking, phone, code, params, out_id)

    def _send_blocking(
        self, phone: str, template_code: str, params: dict[str, str], out_id: str
    ) -> SendResult:
        from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
        from aliyunsdkdysmsapi.request.v20170525.SendSmsRequest import SendSmsRequest

        request = SendSmsRequest()
        request.set_endpoint(self._endpoint.host)
        request.set_protocol_type(self._endpoint.scheme)
        request.set_accept_format("JSON")
        request.set_PhoneNumbers(phone)
        request.set_SignName(self._sign_name)
        request.set_TemplateCode(template_code)
        request.set_TemplateParam(json.dumps(params, ensure_ascii=False, separators=(",", ":")))
        request.set_OutId(out_id)
        try:
            body = self._client.do_action_with_exception(request)
        except ServerException as err:
            raise classify(
                str(err.get_error_code()), str(err.get_error_msg()), err.get_http_status()
            ) from err
        except ClientException as err:
            raise classify(str(err.get_error_code()), str(err.get_error_msg())) from err
        try:
            answer = json.loads(body)
        except (ValueError, TypeError) as err:
            raise ProviderError(
                "sms_bad_answer", "the answer is not JSON", retryable=True, maybe_sent=True
            ) from err
        if not isinstance(answer, dict):
            raise ProviderError(
                "sms_bad_answer", "the answer is not an object", retryable=True, maybe_sent=True
            )
        result = str(answer.get("Code", ""))
        if result != "OK":
            raise classify(result or "sms_bad_answer", str(answer.get("Message", "")))
        return SendResult(
            biz_id=str(answer.get("BizId", "")), request_id=str(answer.get("RequestId", ""))
        )


def build_provider(settings: Settings) -> SmsProvider:
    """The provider ``TONGBAN_SMS_PROVIDER`` names (validated by the settings)."""
    if settings.sms_provider == "aliyun":
        return AliyunProvider.from_settings(settings)
    return LogProvider()
