"""Joins calls to their media and recording: opens a call's media and its recording when it
is answered, carries ``rtc:offer`` / ``rtc:candidate`` to it, asks browsers to re-offer when
another participant's tracks arrive, and closes both when the call ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
import socketio
import sqlalchemy as sa
from aiohttp import web
from prometheus_client import Gauge
from pydantic import Field

from directory.model import Account
from directory.service import DirectoryService
from media.engine import MediaLimits, MediaSettings
from media.host import LocalMediaHost, MediaHost, media_unavailable
from media.workers import WorkerPool
from recorder.service import RecordingService
from signaling.media_rpc import MediaPlacement, MediaRpc
from signaling.redis_pool import redis_client
from signaling.server import SIO, On
from signaling.service import CallService
from storage import schema as s
from storage.blobs import open_blob_store
from storage.database import Database
from tongban.clock import Clock
from tongban.errors import InvalidInput
from tongban.validation import Payload
from web.state import SERVICES

log = logging.getLogger(__name__)


class OfferBody(Payload):
    call_id: str = Field(min_length=1, max_length=64)
    sdp: str = Field(min_length=1, max_length=60_000)
    tracks: dict[str, str] = Field(max_length=8)


class CandidateBody(Payload):
    call_id: str = Field(min_length=1, max_length=64)
    candidate: dict[str, Any] | None = None


class MediaBridge:
    """The ``CallHooks`` of a node whose calls carry media."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        directory: DirectoryService,
        host: MediaHost,
        recordings: RecordingService,
        sio: socketio.AsyncServer,
        node_id: str,
    ) -> None:
        self._db = db
        self._clock = clock
        self._directory = directory
        self.host = host
        self.recordings = recordings
        self._sio = sio
        self.node_id = node_id
        self.calls: CallService | None = None
        self.rpc: MediaRpc | None = None  # cluster mode: reach other nodes' media
        self.placement: MediaPlacement | None = None  # cluster mode: least-loaded worker
        self._tasks: set[asyncio.Future[None]] = set()
        self._fingerprints: dict[tuple[str, str], str] = {}  # (call, participant) -> DTLS
        recordings.listeners.append(self.recording_changed)

    async def _emit_to_username(self, username: str, event: str, payload: dict[str, Any]) -> None:
        snap = await self._directory.snapshot()
        account = snap.account_by_username(username)
        if account is not None:
            await self._sio.emit(event, payload, room=f"user:{account.id}")

    def renegotiate(self, call_id: str, participant: str, needs: dict[str, int]) -> None:
        """The host says another participant's tracks arrived: ask this one to offer again."""
        self._spawn(
            self._emit_to_username(
                participant, "media:renegotiate", {"call_id": call_id, "needs": needs}
            )
        )

    async def media_lost(self, call_ids: list[str]) -> None:
        """A media worker died: its calls end, their partial recordings are finished."""
        for call_id in call_ids:
            if self.calls is not None and await self.calls.end_for(call_id, "media_failure"):
                continue
            await self.call_finished(call_id)  # already ended: still finish its recording

    async def call_answered(self, call_id: str) -> None:
        """Open the call's media on the least-loaded worker (of the cluster, in cluster mode)."""
        node, worker = self.node_id, None
        if self.placement is not None:
            node, worker = await self.placement.choose(self.host.loads())
        if node != self.node_id and self.rpc is not None:
            try:
                await self.rpc.call(node, "open_call", {"call_id": call_id, "worker": worker})
                return
            except Exception:
                log.warning("node %s could not take call %s; carrying it here", node, call_id)
                worker = None
        await self.open_local(call_id, worker)

    async def open_local(self, call_id: str, worker: int | None) -> None:
        """Carry the call's media here, unless another node has claimed it.

        The claim is a compare-and-set on ``calls.media_node``: a node that asked another to
        take the call and gave up waiting carries it itself, and the other node may still
        get to it; whichever claims first carries the media, the other opens nothing (before,
        both did, and the media that signaling no longer pointed at stayed open). A request
        repeated to the node that carries the call opens nothing either."""
        mine = s.calls.c.id == call_id
        async with self._db.begin() as conn:
            row = (await conn.execute(sa.select(s.calls).where(mine))).one()
            claimed = await conn.execute(
                sa.update(s.calls)
                .where(mine, s.calls.c.media_node.is_(None))
                .values(media_node=self.node_id)
            )
        if claimed.rowcount != 1:
            log.info("call %s: its media is already carried by another node", call_id)
            return
        started: datetime = row.answered_at or self._clock.now()
        dump = await self.recordings.start(call_id, row.case_id, started)
        try:
            await self.host.open_call(call_id, dump, worker=worker)
        except Exception:
            self.recordings.finish_soon(call_id)  # an empty dump: the row says why
            async with self._db.begin() as conn:  # another node may try (call_answered)
                await conn.execute(
                    sa.update(s.calls)
                    .where(mine, s.calls.c.media_node == self.node_id)
                    .values(media_node=None)
                )
            raise
        await self.emit_to_call(
            call_id, "call:recording", {"call_id": call_id, "state": "recording"}
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def emit_to_call(self, call_id: str, event: str, payload: dict[str, Any]) -> None:
        """To everyone who joined the call (its members' own rooms, on any node)."""
        async with self._db.connect() as conn:
            ids = list(
                await conn.scalars(
                    sa.select(s.call_members.c.account_id).where(
                        s.call_members.c.call_id == call_id,
                        s.call_members.c.joined_at.is_not(None),
                    )
                )
            )
        for account_id in ids:
            await self._sio.emit(event, payload, room=f"user:{account_id}")

    async def recording_changed(self, call_id: str, state: str) -> None:
        await self.emit_to_call(call_id, "call:recording", {"call_id": call_id, "state": state})

    async def close(self) -> None:
        await self.host.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def call_finished(self, call_id: str) -> None:
        if not self.host.has_call(call_id) and not self.recordings.is_recording(call_id):
            node = await self._media_node(call_id)
            if node is not None and self.rpc is not None:
                try:
                    await self.rpc.call(node, "close_call", {"call_id": call_id})
                except Exception as err:  # that node or Redis is gone: node watch ends it
                    log.warning("could not close call %s on node %s: %s", call_id, node, err)
            return
        await self.close_local(call_id)

    async def close_local(self, call_id: str) -> None:
        for key in [k for k in self._fingerprints if k[0] == call_id]:
            del self._fingerprints[key]
        await self.host.close_call(call_id)
        self.recordings.finish_soon(call_id)

    def sms_queued(self) -> None:
        return None  # the signaling layer wakes the SMS worker

    def deadline_added(self, due_at: datetime) -> None:
        return None

    async def local_offer(
        self, call_id: str, username: str, sdp: str, tracks: dict[str, str]
    ) -> dict[str, Any]:
        if not self.host.has_call(call_id):
            raise media_unavailable()
        key = (call_id, username)
        fingerprint = _dtls_fingerprint(sdp)
        # a new peer connection (a reloaded page, a restarted browser) has a new DTLS
        # certificate, so the old leg cannot carry it: the host starts a new one
        replace = key in self._fingerprints and fingerprint != self._fingerprints[key]
        answer = await self.host.offer(call_id, username, sdp, tracks, replace=replace)
        self._fingerprints[key] = fingerprint
        return answer

    async def local_candidate(self, call_id: str, username: str, candidate: dict[str, Any]) -> None:
        await self.host.candidate(call_id, username, candidate)

    async def serve_rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """What another node asks of the calls whose media this node carries."""
        if method == "offer":
            return await self.local_offer(
                params["call_id"], params["username"], params["sdp"], params["tracks"]
            )
        if method == "candidate":
            await self.local_candidate(params["call_id"], params["username"], params["candidate"])
            return {}
        if method == "open_call":
            worker = params.get("worker")
            await self.open_local(
                str(params["call_id"]), int(worker) if worker is not None else None
            )
            return {}
        if method == "close_call":
            if self.host.has_call(params["call_id"]) or self.recordings.is_recording(
                params["call_id"]
            ):
                await self.close_local(str(params["call_id"]))
            return {}
        raise InvalidInput(f"unknown media method {method}")

    async def _media_node(self, call_id: str) -> str | None:
        """Where the call's media lives when it is not here (cluster mode only)."""
        if self.rpc is None or self.host.has_call(call_id):
            return None
        async with self._db.connect() as conn:
            node: str | None = await conn.scalar(
                sa.select(s.calls.c.media_node).where(s.calls.c.id == call_id)
            )
        return node if node and node != self.node_id else None

    def register(self, on: On) -> None:
        """Adds ``rtc:offer`` and ``rtc:candidate`` to the Socket.IO handlers."""

        @on("rtc:offer", OfferBody)
        async def offer(account: Account, body: OfferBody, sid: str) -> dict[str, Any]:
            assert self.calls is not None
            await self.calls.require_participant(account, body.call_id)
            for label in body.tracks.values():
                if label not in ("camera", "document", "audio"):
                    raise InvalidInput(
                        "tracks 的取值只能是 camera、document 或 audio", code="invalid_input"
                    )
            node = await self._media_node(body.call_id)
            if node is not None and self.rpc is not None:
                return await self.rpc.call(
                    node,
                    "offer",
                    {
                        "call_id": body.call_id,
                        "username": account.username,
                        "sdp": body.sdp,
                        "tracks": dict(body.tracks),
                    },
                )
            return await self.local_offer(
                body.call_id, account.username, body.sdp, dict(body.tracks)
            )

        @on("rtc:candidate", CandidateBody)
        async def candidate(account: Account, body: CandidateBody, sid: str) -> None:
            assert self.calls is not None
            await self.calls.require_participant(account, body.call_id)
            if body.candidate is None or not body.candidate.get("candidate"):
                return  # end-of-candidates: nothing to do for aiortc
            node = await self._media_node(body.call_id)
            if node is not None and self.rpc is not None:
                await self.rpc.call(
                    node,
                    "candidate",
                    {
                        "call_id": body.call_id,
                        "username": account.username,
                        "candidate": body.candidate,
                    },
                )
                return
            await self.local_candidate(body.call_id, account.username, body.candidate)


def _dtls_fingerprint(sdp: str) -> str:
    """The offer's DTLS certificate fingerprint: it changes only with a new peer connection
    (an ICE restart keeps it)."""
    for line in sdp.splitlines():
        if line.startswith("a=fingerprint:"):
            return line.strip()
    return ""


MEDIA_BRIDGE = web.AppKey("media_bridge", MediaBridge)


def setup(app: web.Application) -> None:
    """The media part: registered before signaling so its hooks exist when calls start."""
    app.cleanup_ctx.append(_media_ctx)


async def _media_ctx(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    settings = services.settings
    blobs = open_blob_store(
        settings.recordings_url,
        s3_endpoint=settings.s3_endpoint,
        s3_access_key=settings.s3_access_key,
        s3_secret_key=settings.s3_secret_key.reveal() if settings.s3_secret_key else None,
        s3_region=settings.s3_region,
    )
    recordings = RecordingService(
        services.db,
        services.clock,
        blobs,
        settings.data_dir / "recording-work",
        retention_months=settings.retention_months,
    )
    media_settings = MediaSettings(
        ice_servers=[dict(x) for x in settings.ice_servers],
        host_addresses=list(settings.media_addresses) or None,
        limits=MediaLimits(
            max_peer_connections=settings.max_peer_connections,
            max_calls=max(1, settings.max_peer_connections // 2),
        ),
    )
    workers = settings.media_worker_count
    host: LocalMediaHost | WorkerPool
    host = WorkerPool(workers, media_settings) if workers else LocalMediaHost(media_settings)
    bridge = MediaBridge(
        db=services.db,
        clock=services.clock,
        directory=services.directory,
        host=host,
        recordings=recordings,
        sio=app[SIO],
        node_id=settings.node_id,
    )
    host.on_renegotiate = bridge.renegotiate
    if isinstance(host, WorkerPool):
        host.on_lost = bridge.media_lost
    await recordings.recover()
    await host.start()
    if isinstance(host, WorkerPool):
        pool = host

        async def workers_health() -> str:
            alive = sum(1 for n in pool.loads() if n >= 0)
            if alive == pool.count:
                return "ok"
            return f"error: {alive} of {pool.count} media workers running (restarting)"

        services.extra.setdefault("health", {})["media_workers"] = workers_health
        Gauge(
            "tongban_media_workers_alive",
            "Media worker processes running on this node",
            registry=services.metrics.registry,
        ).set_function(lambda: sum(1 for n in pool.loads() if n >= 0))
        Gauge(
            "tongban_media_worker_restarts",
            "Media worker processes started again after dying",
            registry=services.metrics.registry,
        ).set_function(lambda: pool.restarts)
    rpc_redis: aioredis.Redis | None = None
    if settings.redis_url:
        rpc_redis = redis_client(settings.redis_url)
        bridge.rpc = MediaRpc(rpc_redis, settings.node_id, bridge.serve_rpc)
        await bridge.rpc.start()
        bridge.placement = MediaPlacement(rpc_redis, settings.node_id, host.loads)
        bridge.placement.start()
    services.extra["media_bridge"] = bridge
    services.extra["recordings"] = recordings
    app[MEDIA_BRIDGE] = bridge
    try:
        yield
    finally:
        if bridge.placement is not None:
            await bridge.placement.stop()
        if bridge.rpc is not None:
            await bridge.rpc.stop()
        if rpc_redis is not None:
            await rpc_redis.aclose()
        await bridge.close()
        await recordings.close()
        await blobs.close()
