"""The aiohttp application: composed from parts, every resource in a cleanup context."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cases.service import CaseService
from directory.accounts import AccountService
from directory.cluster import ClusterDirectory
from directory.passwords import LockoutPolicy
from directory.service import DirectoryService
from storage.database import Database
from storage.db import create_engine, migrate
from tongban.clock import Clock, SystemClock
from tongban.periodic import Periodic
from tongban.settings import Settings
from web import api_accounts, api_admin, api_cases, api_duty
from web.http import errors_middleware, ok, origin_middleware
from web.metrics import Metrics
from web.sessions import SessionPolicy, SessionService
from web.state import SERVICES, SETTINGS, Services

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
VENDOR = Path(__file__).parent.parent / "node_modules" / "socket.io-client" / "dist"

# A part of the app (signaling, sms, recordings...) registers routes and cleanup contexts.
Part = Callable[[web.Application], None]


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    run_migrations: bool = True,
    parts: tuple[Part, ...] | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, origin_middleware],
        client_max_size=settings.max_request_bytes,
    )
    app[SETTINGS] = settings
    the_clock = clock or SystemClock()

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        db = Database(
            create_engine(settings.database_url, background_checkpoints=True), direct=True
        )
        directory: DirectoryService | None = None
        checkpoints = Periodic(db.checkpoint, name="sqlite checkpoint", first_after=1.0, every=1.0)
        try:
            if db.dialect == "sqlite":
                checkpoints.start()
            if run_migrations:
                await migrate(db.engine)
            sessions = SessionService(
                db,
                the_clock,
                SessionPolicy(
                    idle=timedelta(minutes=settings.session_idle_minutes),
                    absolute=timedelta(hours=settings.session_absolute_hours),
                    lockout=LockoutPolicy(
                        settings.lockout_attempts, timedelta(minutes=settings.lockout_minutes)
                    ),
                ),
            )
            if settings.redis_url:
                directory = ClusterDirectory(
                    db,
                    the_clock,
                    calendar_fallback=settings.calendar_fallback,
                    redis_url=settings.redis_url,
                    node_id=settings.node_id,
                )
            else:
                directory = DirectoryService(
                    db, the_clock, calendar_fallback=settings.calendar_fallback
                )
            services = Services(
                settings=settings,
                clock=the_clock,
                db=db,
                directory=directory,
                sessions=sessions,
                accounts=AccountService(db, the_clock, sessions.revoke_account),
                cases=CaseService(db, the_clock),
                metrics=Metrics(),
            )
            await services.directory.reload()
            if isinstance(directory, ClusterDirectory):
                await directory.start()
            app[SERVICES] = services
            yield
        finally:
            if isinstance(directory, ClusterDirectory):
                await directory.close()
            await checkpoints.close()
            await db.close()

    app.cleanup_ctx.append(services_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    api_accounts.setup(app)
    api_cases.setup(app)
    api_admin.setup(app)
    api_duty.setup(app)
    for part in parts if parts is not None else default_parts():
        part(app)
    if STATIC.is_dir():
        app.router.add_get("/", index)
        app.router.add_static("/static/", STATIC, follow_symlinks=False)
    if VENDOR.is_dir():
        # third-party browser code installed by `npm ci` (package-lock.json), never committed
        app.router.add_static("/vendor/socket.io/", VENDOR, follow_symlinks=False)
    return app


def default_parts() -> tuple[Part, ...]:
    """The parts of a full server, in the order their cleanup contexts start: the SMS worker
    and the media path exist before signaling starts ringing calls."""
    from oversight import http as oversight_http
    from recorder import http as recorder_http
    from signaling import http as signaling_http
    from signaling import media_bridge
    from signaling import server as signaling_server
    from sms import http as sms_http

    return (
        sms_http.setup,
        media_bridge.setup,
        recorder_http.setup,  # after the media part: shares its blob store
        signaling_server.setup,
        signaling_http.setup,
        oversight_http.setup,
    )


async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    checks: dict[str, str] = {}
    status = 200
    try:
        async with services.db.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
        checks["database"] = "ok"
    except Exception as err:  # the point of a health check is to report, not raise
        checks["database"] = f"error: {type(err).__name__}"
        status = 503
    for name, probe in services.extra.get("health", {}).items():
        checks[name] = await probe()
        if checks[name] != "ok":
            status = 503
    snap = await services.directory.snapshot()
    warnings = snap.calendar.warnings(services.clock.now().date())
    return ok(
        {"status": "ok" if status == 200 else "degraded", "checks": checks, "warnings": warnings},
        status=status,
    )


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[SERVICES].metrics.registry
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")
