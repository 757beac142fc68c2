"""One root exception with a few subclasses that carry a stable ``code``.

Each edge translates them: the HTTP middleware into a JSON error body, the Socket.IO
handlers into an ack with ``ok: false``. A client never sees a traceback.
"""

from __future__ import annotations

from typing import Any


class TongbanError(Exception):
    """Root of every error the application raises on purpose."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body.update(self.details)
        return body


class InvalidInput(TongbanError):
    code = "invalid_input"
    status = 400


class Unauthenticated(TongbanError):
    code = "unauthenticated"
    status = 401


class Forbidden(TongbanError):
    code = "forbidden"
    status = 403


class NotFound(TongbanError):
    code = "not_found"
    status = 404


class Conflict(TongbanError):
    code = "conflict"
    status = 409


class InvalidState(TongbanError):
    """An action that the object's current state does not allow; names that state."""

    code = "invalid_state"
    status = 409


class Locked(TongbanError):
    code = "account_locked"
    status = 423


class TooLarge(TongbanError):
    code = "too_large"
    status = 413


class LimitReached(TongbanError):
    code = "limit_reached"
    status = 503
