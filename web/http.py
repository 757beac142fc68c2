"""HTTP edges: JSON errors, the Origin check, the current session, JSON bodies."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import audit
from tongban.errors import Forbidden, InvalidInput, TongbanError, TooLarge
from tongban.validation import parse
from web.sessions import Session
from web.state import SERVICES

log = logging.getLogger(__name__)

COOKIE = "tongban_session"
SESSION_KEY = web.RequestKey("tongban.session", Session)
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def ok(data: Any = None, status: int = 200) -> web.Response:
    return web.json_response(
        data if data is not None else {"ok": True}, status=status, dumps=_dumps
    )


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as a JSON error body with a stable code; never a traceback."""
    services = request.app[SERVICES]
    try:
        response = await handler(request)
    except TongbanError as err:
        response = error_response(err.status, err.code, err.message, **err.details)
    except web.HTTPRequestEntityTooLarge:
        response = error_response(413, "too_large", "请求内容过大")
    except web.HTTPException as err:
        if err.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status, "http_error")
        response = error_response(err.status, code, err.reason)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        response = error_response(500, "internal_error", "服务器内部错误，请稍后重试")
    services.metrics.http_requests.labels(request.method, str(response.status)).inc()
    return response


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """State-changing requests from a page of another site are refused (CONTRACT.md);
    scripts that send no Origin are served."""
    if request.method in UNSAFE:
        origin = request.headers.get("Origin")
        if origin is not None and not same_origin(request, origin):
            raise Forbidden("不允许跨站请求", code="bad_origin")
    return await handler(request)


def same_origin(request: web.Request, origin: str) -> bool:
    allowed = request.app[SERVICES].settings.allowed_origins
    if origin in allowed:
        return True
    if origin == "null":
        return False
    parts = urlsplit(origin)
    host = request.headers.get("X-Forwarded-Host") or request.host
    return parts.netloc == host and parts.scheme in ("http", "https")


def source_of(request: web.Request) -> str:
    return request.remote or ""


async def current_session(request: web.Request) -> Session:
    cached = request.get(SESSION_KEY)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    session = await request.app[SERVICES].sessions.resolve(request.cookies.get(COOKIE))
    request[SESSION_KEY] = session
    return session


async def require_role(request: web.Request, *roles: str) -> Session:
    session = await current_session(request)
    if roles and session.account.role not in roles:
        raise Forbidden("无权进行此操作", code="forbidden")
    return session


async def read_body(request: web.Request, model: type[M]) -> M:
    if (
        request.content_length is not None
        and request.content_length > request.app[SERVICES].settings.max_request_bytes
    ):
        raise TooLarge("请求内容过大")
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidInput("请求内容不是有效的 JSON", code="invalid_json") from err
    return parse(model, data)


async def audit_by(
    conn: AsyncConnection,
    request: web.Request,
    session: Session,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """An action taken by the signed-in user of this request, audited in ``conn``'s
    transaction (who, what, when, from where)."""
    await audit(
        conn,
        at=request.app[SERVICES].clock.now(),
        actor=session.account.username,
        actor_id=session.account.id,
        action=action,
        target=target,
        result="ok",
        source=source_of(request),
        detail=detail,
    )


def int_param(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except (KeyError, ValueError):
        raise InvalidInput(f"{name} 必须是整数", code="invalid_input") from None


class AccessLogger(AbstractAccessLogger):
    """Method, path without the query string (it may carry a case number), status, time."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %.1fms", request.method, request.path, response.status, time * 1000
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
