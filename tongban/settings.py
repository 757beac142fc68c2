"""Settings, read once from ``TONGBAN_*`` environment variables into a frozen object.

Validated at start-up with a message that names the variable; secrets are wrapped so that
they never appear in a repr, a log line or a traceback.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PREFIX = "TONGBAN_"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Secret:
    """A string that does not print."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./var")
    database_url: str = ""  # empty: a SQLite file in data_dir
    redis_url: str | None = None
    recordings_url: str = ""  # empty: a folder in data_dir
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: Secret | None = None
    s3_region: str = "us-east-1"
    sms_provider: str = "log"
    aliyun_access_key_id: str | None = None
    aliyun_access_key_secret: Secret | None = None
    aliyun_sign_name: str | None = None
    aliyun_template_reminder: str | None = None
    aliyun_template_escalation: str | None = None
    aliyun_endpoint: str = "https://dysmsapi.aliyuncs.com"
    ice_servers: tuple[dict[str, Any], ...] = ()
    media_addresses: tuple[str, ...] = ()  # empty: every non-loopback interface
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ring_timeout: float = 60.0
    ring_limit: float = 300.0
    miss_limit: int = 3
    retention_months: int = 6
    reconnect_grace: float = 30.0
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    lockout_attempts: int = 5
    lockout_minutes: int = 30
    allowed_origins: tuple[str, ...] = ()
    # Years chinese-calendar does not know and no schedule was loaded for: "weekdays" falls back
    # to Monday-Friday with a warning; "error" refuses (clear error, never a crash).
    calendar_fallback: str = "weekdays"
    max_request_bytes: int = 1 << 20
    max_peer_connections: int = 400
    # media worker processes of this node: -1 (or "auto"): one per core; 0: media runs in the
    # server's own process
    media_workers: int = -1
    # names this node in a cluster (calls whose media it carried, presence entries); must stay
    # the same across restarts of the node. Empty: the host name.
    node_id: str = ""
    secure_cookies: bool = field(default=False)

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(
                self,
                "database_url",
                f"sqlite+aiosqlite:///{(self.data_dir / 'tongban.sqlite3').as_posix()}",
            )
        if not self.recordings_url:
            folder = (self.data_dir / "recordings").resolve()
            object.__setattr__(self, "recordings_url", folder.as_uri())
        if self.tls_cert is not None:
            object.__setattr__(self, "secure_cookies", True)
        if not self.node_id:
            object.__setattr__(self, "node_id", socket.gethostname())
        self._validate()

    def _validate(self) -> None:
        def fail(name: str, why: str) -> None:
            raise SettingsError(f"{PREFIX}{name.upper()}: {why}")

        if not self.database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            fail("database_url", "must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        if self.sms_provider not in ("log", "aliyun"):
            fail("sms_provider", "must be 'log' or 'aliyun'")
        if self.sms_provider == "aliyun":
            for name in (
                "aliyun_access_key_id",
                "aliyun_access_key_secret",
                "aliyun_sign_name",
                "aliyun_template_reminder",
                "aliyun_template_escalation",
            ):
                if not getattr(self, name):
                    fail(name, "is required when TONGBAN_SMS_PROVIDER=aliyun")
        if not self.recordings_url.startswith(("file://", "s3://")):
            fail("recordings_url", "must be file:///path or s3://bucket/prefix")
        if (self.tls_cert is None) != (self.tls_key is None):
            fail("tls_cert", "TONGBAN_TLS_CERT and TONGBAN_TLS_KEY go together")
        if self.ring_timeout <= 0:
            fail("ring_timeout", "must be positive")
        if self.ring_limit <= self.ring_timeout:
            fail("ring_limit", "must be longer than TONGBAN_RING_TIMEOUT")
        if self.miss_limit < 0:
            fail("miss_limit", "must not be negative")
        if self.retention_months < 1:
            fail("retention_months", "must be at least 1")
        if self.redis_url is not None and self.is_sqlite:
            fail("redis_url", "cluster mode needs PostgreSQL (TONGBAN_DATABASE_URL)")
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://")):
            fail("redis_url", "must start with redis:// or rediss://")
        if self.media_workers < -1:
            fail("media_workers", "must be auto (-1), 0 (in this process) or a number of workers")
        if self.calendar_fallback not in ("weekdays", "error"):
            fail("calendar_fallback", "must be 'weekdays' or 'error'")
        for server in self.ice_servers:
            if not isinstance(server, dict) or "urls" not in server:
                fail("ice_servers", "each entry must be an object with 'urls'")

    @property
    def media_worker_count(self) -> int:
        if self.media_workers < 0:
            return max(1, len(os.sched_getaffinity(0)))
        return self.media_workers

    @property
    def clustered(self) -> bool:
        return self.redis_url is not None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def describe(self) -> dict[str, str]:
        """Every setting as text, secrets hidden: safe to log."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


def _cast(name: str, raw: str, default: Any) -> Any:
    annotation = Settings.__dataclass_fields__[name].type
    text = str(annotation)
    try:
        if "Secret" in text:
            return Secret(raw)
        if "Path" in text:
            return Path(raw) if raw else None
        if "bool" in text:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if "float" in text:
            return float(raw)
        if name == "media_workers" and raw.strip().lower() == "auto":
            return -1
        if "int" in text and "tuple" not in text:
            return int(raw)
        if name == "ice_servers":
            value = json.loads(raw) if raw.strip() else []
            if not isinstance(value, list):
                raise ValueError("expected a JSON list")
            return tuple(value)
        if "tuple" in text:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except (ValueError, json.JSONDecodeError) as err:
        raise SettingsError(f"{PREFIX}{name.upper()}: {err}") from err


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the environment once; ``overrides`` win (tests and the CLI use them)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        key = PREFIX + f.name.upper()
        if key in env:
            values[f.name] = _cast(f.name, env[key], f.default)
    values.update(overrides)
    return Settings(**values)
