"""Where a node's call media runs: in this process, or in media worker processes.

The signaling side (``signaling/media_bridge.py``) sees one :class:`MediaHost`:

- :class:`LocalMediaHost` runs the calls' peer connections on this process's event loop
  (``TONGBAN_MEDIA_WORKERS=0``; the tests' default);
- ``media.workers.WorkerPool`` runs one :class:`LocalMediaHost` in each of N worker processes
  (one per core by default) and places each call on the least-loaded one.

Either way, a call's recording dump is written where its packets pass: the host opens a
``DumpWriter`` at the path the recorder chose, appends every packet, fdatasyncs it every few
seconds and closes it (with its end marker) when the call's media closes. The recorder remuxes
it afterwards; a dump left by a crash is still on disk for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from media.engine import MediaEngine, MediaSettings
from recorder.dump import DumpWriter
from tongban.errors import NotFound

log = logging.getLogger(__name__)

SYNC_EVERY_S = 2.0  # fdatasync of open dumps: bounds what a power cut loses

# call id, participant, receive needs ({"audio": n, "video": m}) of the participant's next offer
RenegotiateHandler = Callable[[str, str, dict[str, int]], None]


@dataclass(frozen=True, slots=True)
class DumpSpec:
    """Where and for what a call's packets are dumped (crosses the process boundary)."""

    path: str
    call_id: str
    started_at: str  # ISO 8601 with offset

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "call_id": self.call_id, "started_at": self.started_at}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DumpSpec:
        return cls(str(doc["path"]), str(doc["call_id"]), str(doc["started_at"]))


class MediaHost(Protocol):
    async def start(self) -> None: ...

    async def open_call(
        self, call_id: str, dump: DumpSpec | None, *, worker: int | None = None
    ) -> int:
        """Open the call's media (on ``worker``, else the least-loaded); returns the worker."""

    async def offer(
        self,
        call_id: str,
        participant: str,
        sdp: str,
        tracks: dict[str, str],
        *,
        replace: bool = False,
    ) -> dict[str, Any]:
        """Apply an offer; ``replace`` starts a new leg (a new DTLS certificate)."""

    async def candidate(
        self, call_id: str, participant: str, candidate: dict[str, Any]
    ) -> None: ...

    async def close_call(self, call_id: str) -> None:
        """Close the call's media and its dump; nothing if the call has none here."""

    def has_call(self, call_id: str) -> bool: ...

    def loads(self) -> list[int]:
        """Calls carried by each worker (index = worker); a dead worker counts as -1."""

    async def close(self) -> None: ...


def media_unavailable() -> NotFound:
    return NotFound("该通话的媒体尚未就绪或已结束", code="media_unavailable")


class LocalMediaHost:
    """The calls' media on this process's event loop."""

    def __init__(
        self, settings: MediaSettings, on_renegotiate: RenegotiateHandler | None = None
    ) -> None:
        self.engine = MediaEngine(settings)
        self.on_renegotiate = on_renegotiate
        self._writers: dict[str, DumpWriter] = {}
        self._sync_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._sync_task is None:
            self._sync_task = asyncio.create_task(self._sync_loop(), name="dump-sync")

    async def open_call(
        self, call_id: str, dump: DumpSpec | None, *, worker: int | None = None
    ) -> int:
        writer = None
        if dump is not None:
            writer = DumpWriter(dump.path, dump.call_id, datetime.fromisoformat(dump.started_at))

        def renegotiate(participant: str, needs: dict[str, int]) -> None:
            if self.on_renegotiate is not None:
                self.on_renegotiate(call_id, participant, needs)

        try:
            self.engine.open_call(call_id, sink=writer, on_renegotiate=renegotiate)
        except Exception:
            if writer is not None:
                writer.close()
            raise
        if writer is not None:
            self._writers[call_id] = writer
        return 0

    def _media(self, call_id: str) -> Any:
        try:
            return self.engine.get(call_id)
        except NotFound:
            raise media_unavailable() from None

    async def offer(
        self,
        call_id: str,
        participant: str,
        sdp: str,
        tracks: dict[str, str],
        *,
        replace: bool = False,
    ) -> dict[str, Any]:
        media = self._media(call_id)
        if replace:
            await media.remove_participant(participant)
        answer = await media.offer(participant, sdp, tracks)
        return {
            "sdp": answer,
            "type": "answer",
            "receive": media.receive_map(participant),
            "needs": media.receive_needs(participant),
            # other tracks exist that this answer could not carry: offer again with at
            # least ``needs`` receive transceivers
            "renegotiate": media.needs_offer(participant),
        }

    async def candidate(self, call_id: str, participant: str, candidate: dict[str, Any]) -> None:
        await self._media(call_id).add_candidate(participant, candidate)

    async def needs(self, call_id: str, participant: str) -> dict[str, int]:
        """Receive m-lines the participant's next offer needs (before its first offer too)."""
        needs: dict[str, int] = self._media(call_id).receive_needs(participant)
        return needs

    async def close_call(self, call_id: str) -> None:
        await self.engine.close_call(call_id)  # closes the dump through CallMedia's sink
        writer = self._writers.pop(call_id, None)
        if writer is not None:
            writer.close()

    def has_call(self, call_id: str) -> bool:
        return self.engine.has_call(call_id)

    def loads(self) -> list[int]:
        return [self.engine.call_count]

    def stats(self) -> dict[str, Any]:
        return {
            **self.engine.stats(),
            "dumps": {
                cid: {"written": w.packets_written, "dropped": w.packets_dropped}
                for cid, w in self._writers.items()
            },
        }

    async def close(self) -> None:
        """Close every call; their dumps end cleanly and are finished at the next start."""
        if self._sync_task is not None:
            self._sync_task.cancel()
            await asyncio.gather(self._sync_task, return_exceptions=True)
            self._sync_task = None
        await self.engine.close()
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(SYNC_EVERY_S)
            for writer in list(self._writers.values()):
                await asyncio.to_thread(writer.sync)
