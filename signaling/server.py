"""Socket.IO on the aiohttp app: authenticated connections, presence, call events.

Every client event is validated and always acknowledged: ``{"ok": true, ...}`` or
``{"ok": false, "error": {"code", "message"}}``. Nothing a client sends can crash the node.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import timedelta
from http.cookies import CookieError, SimpleCookie
from typing import Any, Literal

import redis.asyncio as aioredis
import socketio
from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.model import Account
from oversight.http import escalation_notifiers
from oversight.notify import EscalationEvent
from signaling import engineio_internals
from signaling.nodes import NodeWatch
from signaling.presence import CHOSEN, LocalPresence, PresenceLog, PresenceStore, effective
from signaling.presence_redis import RedisPresence
from signaling.redis_pool import redis_client as connect_redis
from signaling.rooms import Manager, RedisManager
from signaling.scheduler import DeadlineScheduler
from signaling.service import CallHooks, CallService, NoHooks, Timing
from sms.http import SMS_WORKER
from sms.worker import SmsWorker
from tongban.errors import TongbanError, Unauthenticated
from tongban.validation import Payload, parse
from web.http import COOKIE
from web.sessions import Session
from web.state import SERVICES, SETTINGS, Services

log = logging.getLogger(__name__)

SIO = web.AppKey("sio", socketio.AsyncServer)
CALLS = web.AppKey("calls", CallService)
MAX_EVENT_BYTES = 64 * 1024
CallId = Field(min_length=1, max_length=64)


class PresenceBody(Payload):
    status: Literal["online", "away"]


class RequestBody(Payload):
    case_id: int = Field(ge=1, le=2**31)


class CallBody(Payload):
    call_id: str = CallId


class DeclineBody(Payload):
    call_id: str = CallId
    reason: str = Field(default="", max_length=200)


class InviteBody(Payload):
    call_id: str = CallId
    username: str = Field(min_length=1, max_length=60)


class RateBody(Payload):
    call_id: str = CallId
    score: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=500)


class UnnecessaryBody(Payload):
    call_id: str = CallId
    unnecessary: bool = True


class SocketNotifier:
    """Delivers to the room of each account; with the Redis manager, on every node."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    async def to_users(
        self, account_ids: Iterable[int], event: str, payload: dict[str, Any]
    ) -> None:
        rooms = [f"user:{a}" for a in sorted(set(account_ids))]
        if rooms:  # one emit: the packet is encoded once and sent to every room
            await self._sio.emit(event, payload, to=rooms)


class EscalationSockets:
    """Supervisors of the agency an escalation is addressed to see it at once (R5)."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._notifier = SocketNotifier(sio)

    async def escalation_changed(self, event: EscalationEvent) -> None:
        name = "escalation:new" if event.kind == "new" else "escalation:withdrawn"
        await self._notifier.to_users(event.supervisor_ids, name, event.payload())


class PresenceHub:
    """Presence of connected staff: chosen status, busy derived from live answered calls."""

    def __init__(self, store: PresenceStore, log_: PresenceLog, calls: CallService) -> None:
        self.store = store
        self.log = log_
        self.calls = calls
        self.in_call: set[int] = set()
        self.local: dict[str, tuple[int, str]] = {}  # this node's sockets: account, session

    async def statuses(
        self, account_ids: Iterable[int], conn: AsyncConnection | None = None
    ) -> dict[int, str]:
        """Presence of these accounts; ``conn``: the caller's connection, if it holds one."""
        ids = list(account_ids)
        try:
            chosen = await self.store.chosen(ids)
        except Exception:  # Redis restarting: calls go on, presence shows as unknown
            log.warning("presence store unavailable", exc_info=True)
            return {a: "unknown" for a in ids}
        busy = await self.calls.busy_accounts(ids, conn) if self.calls.clustered else self.in_call
        return {a: effective(c, a in busy) for a, c in chosen.items()}


PRESENCE = web.AppKey("presence", PresenceHub)


def _token(environ: dict[str, Any]) -> str | None:
    raw = environ.get("HTTP_COOKIE", "")
    try:
        cookie = SimpleCookie(raw)
    except CookieError:
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel else None


GC_YOUNG_THRESHOLD = 50_000  # allocations between collections of the young generation
_tuned: list[Any] = []  # apps running in this process with the threshold, and what it was


def _collector_tuned(change: int) -> None:
    """The threshold is process-wide: set while any signaling app of this process runs (tests
    run several, one after the other or side by side), CPython's own again after the last."""
    if change > 0:
        if not _tuned:
            _tuned.append(gc.get_threshold())
            gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)
        _tuned.append(True)
    else:
        _tuned.pop()
        if len(_tuned) == 1:
            gc.set_threshold(*_tuned.pop())


def setup(app: web.Application) -> None:
    """Attach Socket.IO to the app; its services start after the app's own."""
    settings = app[SETTINGS]
    engineio_internals.install()  # socket writers wait for packets in one turn, not three
    # python-socketio's managers with a socket → rooms index (signaling/rooms.py): theirs
    # walks every room of the namespace for each disconnect
    manager: socketio.AsyncManager = (
        RedisManager(settings.redis_url, channel="tongban") if settings.redis_url else Manager()
    )
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        transports=["websocket"],
        max_http_buffer_size=MAX_EVENT_BYTES,
        logger=False,
        engineio_logger=False,
    )
    engineio_internals.uncompressed(sio.eio)  # no zlib state per socket (see there)
    sio.attach(app, socketio_path="socket.io")
    app[SIO] = sio
    escalation_notifiers(app).add(EscalationSockets(sio))
    app.cleanup_ctx.append(_signaling_ctx)
    app.on_shutdown.append(_close_sockets)


async def _close_sockets(app: web.Application) -> None:
    """Before the web server waits for open connections: close every Socket.IO connection,
    so a stopping node does not wait out its shutdown timeout on live WebSockets (their
    clients reconnect to another node)."""
    sio = app[SIO]
    if sio.eio.sockets:
        try:
            # every client of this node; bounded: a socket whose writer already died would
            # otherwise wait forever for its send queue to drain
            await asyncio.wait_for(sio.eio.disconnect(), SHUTDOWN_DISCONNECT_S)
        except TimeoutError:
            log.warning("some sockets did not close within %s s", SHUTDOWN_DISCONNECT_S)
        except ValueError:
            # engine.io's disconnect-all waits on a set of the sockets it finds when it runs;
            # if the last ones closed between our look and then, the set is empty and
            # asyncio.wait() refuses it: nothing left to close
            pass
    await sio.shutdown()


async def _signaling_ctx(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    settings = services.settings
    sio = app[SIO]
    if settings.allowed_origins:
        sio.eio.cors_allowed_origins = list(settings.allowed_origins)
    calls = CallService(
        services.db,
        services.clock,
        services.directory,
        SocketNotifier(sio),
        Timing(
            ring_timeout=timedelta(seconds=settings.ring_timeout),
            ring_limit=timedelta(seconds=settings.ring_limit),
            reconnect_grace=timedelta(seconds=settings.reconnect_grace),
        ),
    )
    calls.clustered = settings.clustered
    redis_client: aioredis.Redis | None = None
    watch: NodeWatch | None = None
    store: PresenceStore
    if settings.redis_url:
        # a burst of (dis)connections waits for a pooled connection; a restarted Redis's dead
        # connections are retried on fresh ones (signaling/redis_pool.py)
        redis_client = connect_redis(settings.redis_url)
        cluster_store = RedisPresence(redis_client, settings.node_id)
        cluster_store.start()
        store = cluster_store
        services.extra.setdefault("health", {})["redis"] = _redis_health(redis_client, sio)
        watch = NodeWatch(redis_client, settings.node_id, services.db, calls)
    else:
        store = LocalPresence()
    hub = PresenceHub(store, PresenceLog(services.db), calls)
    calls.online_probe = hub.statuses
    scheduler = DeadlineScheduler(calls, services.clock)
    bridge = services.extra.get("media_bridge")
    hooks: CallHooks = bridge if bridge is not None else NoHooks()
    if bridge is not None:
        bridge.calls = calls
    scheduler_hooks = _SchedulerHooks(hooks, scheduler, hub, app.get(SMS_WORKER))
    calls.hooks = scheduler_hooks
    calls.on_busy_change = scheduler_hooks.hub_refresh
    app[CALLS] = calls
    app[PRESENCE] = hub
    _register(sio, services, calls, hub)
    services.sessions.on_revoked(_revoker(sio))
    if not settings.clustered:
        # one node: nobody can still be connected, and no call can still have media
        await hub.log.close_all(services.clock.now())
    ended = await calls.end_orphaned_calls(None if not settings.clustered else settings.node_id)
    if ended:
        log.warning("ended %d call(s) whose media was lost when the server stopped", ended)
    scheduler.start()
    # With thousands of sockets a full collection walks ~10^6 long-lived objects and pauses
    # the node for hundreds of milliseconds (NOTES-webrtc.md, bench/signaling): freeze what
    # start-up made, and again every few minutes.
    gc.freeze()
    # Young collections every 700 allocations stalled the loop 12-62 ms each (and a middle one
    # 169 ms) at 5,000 staff and 100 requests/s: p99 249-264 ms. Collecting the young after
    # 50,000 allocations instead: p99 9-11 ms, the same CPU (bench/signaling, BENCHMARKS.md).
    _collector_tuned(+1)
    if watch is not None:
        watch.start()
    keepalive = asyncio.create_task(_keepalive_loop(services, hub), name="keepalive")
    freezer = asyncio.create_task(_freeze_after_connects(hub), name="gc-freeze")
    try:
        yield
    finally:
        _collector_tuned(-1)
        keepalive.cancel()
        freezer.cancel()
        await asyncio.gather(keepalive, freezer, return_exceptions=True)
        if watch is not None:
            await watch.stop()
        await scheduler.stop()
        if isinstance(store, RedisPresence):
            await store.stop()
        if redis_client is not None:
            await redis_client.aclose()


SHUTDOWN_DISCONNECT_S = 5.0
KEEPALIVE_EVERY_S = 60.0
KEEPALIVE_SLICE = 250
SESSION_RECHECK_S = 15.0
GC_FREEZE_EVERY_S = 600.0
FREEZE_CHECK_S = 2.0
FREEZE_AFTER_NEW_SOCKETS = 100


async def keep_on_duty_sessions_alive(services: Services, hub: PresenceHub) -> None:
    """A home-locality clerk waits for calls without clicking: while their console is
    connected and they are online (or in a call), their session does not idle out (R2).
    Marked away, or with the page closed, the idle timeout applies as usual.

    In slices of a few hundred accounts: one UPDATE binding every connected session (5,000
    ids) held the event loop and SQLite's write lock long enough to stall call requests once
    a minute (bench/signaling)."""
    sessions: dict[int, set[str]] = {}
    for account, session in list(hub.local.values()):
        sessions.setdefault(account, set()).add(session)
    accounts = sorted(sessions)
    for start in range(0, len(accounts), KEEPALIVE_SLICE):
        chunk = accounts[start : start + KEEPALIVE_SLICE]
        statuses = await hub.statuses(chunk)
        alive = sorted(
            session
            for account in chunk
            if statuses.get(account) in ("online", "busy")
            for session in sessions[account]
        )
        await services.sessions.keep_alive(alive)


async def _freeze_after_connects(hub: PresenceHub) -> None:
    """After a wave of connections (the morning log-in, a node taking over another's
    clients), move what the new sockets and sessions made out of the collector's reach: a
    full collection then walks what changed since, not every socket (a gen-2 pass over 5,000
    sockets' objects paused the node for 0.9-2.5 s, bench/signaling)."""
    frozen_with = len(hub.local)
    while True:
        await asyncio.sleep(FREEZE_CHECK_S)
        now_connected = len(hub.local)
        if now_connected - frozen_with >= FREEZE_AFTER_NEW_SOCKETS:
            gc.collect(1)  # young garbage first, so that the freeze keeps only live objects
            gc.freeze()
        if now_connected - frozen_with >= FREEZE_AFTER_NEW_SOCKETS or now_connected < frozen_with:
            frozen_with = now_connected


async def _keepalive_loop(services: Services, hub: PresenceHub) -> None:
    frozen_at = time.monotonic()
    while True:
        await asyncio.sleep(KEEPALIVE_EVERY_S)
        if time.monotonic() - frozen_at >= GC_FREEZE_EVERY_S:
            gc.freeze()  # long-lived sockets and sessions leave the collector's full passes
            frozen_at = time.monotonic()
        try:
            await keep_on_duty_sessions_alive(services, hub)
        except Exception:
            log.warning("could not keep sessions alive", exc_info=True)


class _SchedulerHooks:
    """Wraps the configured hooks: wakes the scheduler, keeps busy presence current."""

    def __init__(
        self,
        inner: CallHooks,
        scheduler: DeadlineScheduler,
        hub: PresenceHub,
        sms: SmsWorker | None,
    ) -> None:
        self.inner = inner
        self.scheduler = scheduler
        self.hub = hub
        self.sms = sms

    async def call_answered(self, call_id: str) -> None:
        await self.inner.call_answered(call_id)

    async def call_finished(self, call_id: str) -> None:
        await self.inner.call_finished(call_id)

    def sms_queued(self) -> None:
        """Reminders were committed to the outbox: the worker sends them now, not at its
        next poll."""
        if self.sms is not None:
            self.sms.notify()
        self.inner.sms_queued()

    def deadline_added(self, due_at: Any) -> None:
        self.scheduler.wake(due_at)
        self.inner.deadline_added(due_at)

    async def hub_refresh(self) -> None:
        """The service calls this when someone joined an answered call or one ended (not
        after every call end: a call cancelled while ringing changes nobody's presence)."""
        self.hub.in_call = await self.hub.calls.busy_accounts()


def _redis_health(
    client: aioredis.Redis, sio: socketio.AsyncServer
) -> Callable[[], Awaitable[str]]:
    """Redis answers, and the pub/sub listener that carries other nodes' events is alive:
    a dead listener is restarted (python-socketio retries connections itself, but a listener
    task that ended would otherwise leave this node deaf to the others)."""

    async def probe() -> str:
        try:
            await client.ping()
        except Exception as err:
            return f"error: {type(err).__name__}"
        manager = sio.manager
        listener = getattr(manager, "thread", None)
        if listener is not None and listener.done():
            log.error("Socket.IO pub/sub listener had stopped; restarting it")
            manager.thread = sio.start_background_task(manager._thread)
            return "restarted pub/sub listener"
        return "ok"

    return probe


def _revoker(sio: socketio.AsyncServer) -> Callable[[str, str], Awaitable[None]]:
    async def revoke(session_id: str, reason: str) -> None:
        room = f"session:{session_id}"
        await sio.emit("session:revoked", {"reason": reason}, room=room)
        for sid in list(_participants(sio, room)):
            await sio.disconnect(sid)

    return revoke


def _participants(sio: socketio.AsyncServer, room: str) -> Iterable[str]:
    try:
        return [sid for sid, _eio in sio.manager.get_participants("/", room)]
    except KeyError:
        return []


Handler = Callable[[Account, Any, str], Awaitable[dict[str, Any] | None]]
# registers a handler for an event whose payload is validated by the model
On = Callable[[str, type[BaseModel]], Callable[[Handler], Handler]]


def _register(
    sio: socketio.AsyncServer, services: Services, calls: CallService, hub: PresenceHub
) -> None:
    metrics = services.metrics

    checked: dict[str, tuple[Session, float]] = {}

    async def session_of(sid: str) -> Session:
        """The socket's session, checked against the database at most every few seconds:
        revocations are pushed to the socket and disconnect it at once, so the check only
        catches what a push can miss (expiry, another node's revocation during a blip)."""
        now = time.monotonic()
        cached = checked.get(sid)
        if cached is not None and now - cached[1] < SESSION_RECHECK_S:
            return cached[0]
        saved = await sio.get_session(sid)
        session = await services.sessions.resolve_id(saved["session_id"])
        checked[sid] = (session, now)
        return session

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            session = await services.sessions.resolve(_token(environ))
        except TongbanError as err:
            raise socketio.exceptions.ConnectionRefusedError(
                err.message, {"code": err.code}
            ) from None
        except Exception:
            log.exception("socket connect failed")
            raise socketio.exceptions.ConnectionRefusedError(
                "服务器内部错误", {"code": "internal_error"}
            ) from None
        account = session.account
        await sio.save_session(sid, {"session_id": session.id, "account_id": account.id})
        hub.local[sid] = (account.id, session.id)
        await sio.enter_room(sid, f"user:{account.id}")
        await sio.enter_room(sid, f"session:{session.id}")
        metrics.sockets.inc()
        came_online = await hub.store.connected(account.id, sid)
        await calls.participant_back(account.id)
        if came_online and account.role in ("staff", "expert"):
            status = (await hub.store.chosen([account.id]))[account.id]
            await hub.log.change(account.id, status, services.clock.now())
            await _presence_changed(account.id)
        for event, payload in await calls.pending_for(account):
            await sio.emit(event, payload, to=sid)

    async def disconnect(sid: str, reason: Any = None) -> None:
        metrics.sockets.dec()
        hub.local.pop(sid, None)
        checked.pop(sid, None)
        try:
            saved = await sio.get_session(sid)
        except KeyError:
            return
        account_id = saved.get("account_id")
        if account_id is None:
            return
        try:
            if await hub.store.disconnected(account_id, sid):
                await hub.log.change(account_id, "offline", services.clock.now())
                await calls.participant_dropped(account_id)
                await _presence_changed(account_id)
        except Exception:
            log.exception("disconnect handling failed")

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)

    async def _presence_changed(account_id: int) -> None:
        """Callers whose call rings this person see who is online now."""
        try:
            await calls.refresh_ringing_for(account_id)
        except Exception:
            log.exception("presence refresh failed")

    def on(event: str, model: type[BaseModel]) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            async def handle(sid: str, data: Any = None) -> dict[str, Any]:
                try:
                    session = await session_of(sid)
                    body = parse(model, data if data is not None else {})
                    result = await fn(session.account, body, sid)
                    return {"ok": True, **(result or {})}
                except Unauthenticated as err:
                    metrics.socket_errors.labels(err.code).inc()
                    await sio.emit("session:revoked", {"reason": err.code}, to=sid)
                    return {"ok": False, "error": err.to_dict()}
                except TongbanError as err:
                    metrics.socket_errors.labels(err.code).inc()
                    return {"ok": False, "error": err.to_dict()}
                except Exception:
                    log.exception("event %s failed", event)
                    metrics.socket_errors.labels("internal_error").inc()
                    return {
                        "ok": False,
                        "error": {"code": "internal_error", "message": "服务器内部错误，请重试"},
                    }

            sio.on(event, handle)
            return fn

        return register

    @on("presence:set", PresenceBody)
    async def presence_set(account: Account, body: PresenceBody, sid: str) -> dict[str, Any]:
        assert body.status in CHOSEN
        await hub.store.choose(account.id, body.status)
        await hub.log.change(account.id, body.status, services.clock.now())
        await _presence_changed(account.id)
        status = (await hub.statuses([account.id]))[account.id]
        return {"status": status}

    @on("call:request", RequestBody)
    async def request(account: Account, body: RequestBody, sid: str) -> dict[str, Any]:
        return await calls.request(account, body.case_id)

    @on("call:accept", CallBody)
    async def accept(account: Account, body: CallBody, sid: str) -> dict[str, Any]:
        return {"call": await calls.accept(account, body.call_id)}

    @on("call:decline", DeclineBody)
    async def decline(account: Account, body: DeclineBody, sid: str) -> None:
        await calls.decline(account, body.call_id, body.reason)

    @on("call:cancel", CallBody)
    async def cancel(account: Account, body: CallBody, sid: str) -> None:
        await calls.cancel(account, body.call_id)

    @on("call:hangup", CallBody)
    async def hangup(account: Account, body: CallBody, sid: str) -> None:
        await calls.hangup(account, body.call_id)

    @on("call:invite", InviteBody)
    async def invite(account: Account, body: InviteBody, sid: str) -> None:
        await calls.invite(account, body.call_id, body.username)

    @on("call:rate", RateBody)
    async def rate(account: Account, body: RateBody, sid: str) -> None:
        await calls.rate(account, body.call_id, body.score, body.comment)

    @on("call:unnecessary", UnnecessaryBody)
    async def unnecessary(account: Account, body: UnnecessaryBody, sid: str) -> None:
        await calls.mark_unnecessary(account, body.call_id, body.unnecessary)

    bridge = services.extra.get("media_bridge")
    if bridge is not None:
        bridge.register(on)
