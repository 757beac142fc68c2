"""All calls' media on one node, with the node's capacity limits.

One Python process forwards about 12,000 packets a second per core (NOTES-webrtc.md), about
35 one-to-one calls; the caps keep a node from accepting more peer connections than it can
serve and keep one user from holding many.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from media.call import CallMedia, RenegotiateCallback
from media.ports import PacketSink
from tongban.errors import InvalidState, LimitReached, NotFound


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """Capacity of one node. Defaults sized for one core (about 70 peer connections)."""

    max_peer_connections: int = 70
    max_peer_connections_per_user: int = 3
    max_calls: int = 64


@dataclass(slots=True)
class MediaSettings:
    ice_servers: list[dict[str, Any]] = field(default_factory=list)  # none unless configured
    host_addresses: list[str] | None = None  # None: every interface aioice finds
    limits: MediaLimits = field(default_factory=MediaLimits)


class MediaEngine:
    def __init__(self, settings: MediaSettings) -> None:
        self._settings = settings
        self._calls: dict[str, CallMedia] = {}
        self._per_user: Counter[str] = Counter()
        self._total = 0
        self._closed = False

    def open_call(
        self,
        call_id: str,
        *,
        sink: PacketSink | None = None,
        on_renegotiate: RenegotiateCallback | None = None,
    ) -> CallMedia:
        if self._closed:
            raise InvalidState("media engine is closed", state="closed")
        if call_id in self._calls:
            raise InvalidState(f"call {call_id} already has media", state="open")
        if len(self._calls) >= self._settings.limits.max_calls:
            raise LimitReached("this node carries no more calls", limit="max_calls")
        call = CallMedia(
            call_id,
            ice_servers=self._settings.ice_servers,
            host_addresses=self._settings.host_addresses,
            sink=sink,
            on_renegotiate=on_renegotiate,
            admit=self._admit,
            release=self._release,
        )
        self._calls[call_id] = call
        return call

    def has_call(self, call_id: str) -> bool:
        return call_id in self._calls

    def get(self, call_id: str) -> CallMedia:
        call = self._calls.get(call_id)
        if call is None:
            raise NotFound(f"no media for call {call_id}")
        return call

    async def close_call(self, call_id: str) -> None:
        call = self._calls.pop(call_id, None)
        if call is not None:
            await call.close()

    async def close(self) -> None:
        self._closed = True
        calls = list(self._calls.values())
        self._calls.clear()
        await asyncio.gather(*(c.close() for c in calls), return_exceptions=True)

    @property
    def call_count(self) -> int:
        return len(self._calls)

    @property
    def peer_connections(self) -> int:
        return self._total

    def stats(self) -> dict[str, Any]:
        return {
            "calls": len(self._calls),
            "peer_connections": self._total,
            "per_call": {cid: c.stats() for cid, c in self._calls.items()},
        }

    def _admit(self, participant: str) -> None:
        limits = self._settings.limits
        if self._total >= limits.max_peer_connections:
            raise LimitReached(
                "this node carries no more peer connections", limit="max_peer_connections"
            )
        if self._per_user[participant] >= limits.max_peer_connections_per_user:
            raise LimitReached(
                f"{participant} already has {self._per_user[participant]} media connections",
                limit="max_peer_connections_per_user",
            )
        self._total += 1
        self._per_user[participant] += 1

    def _release(self, participant: str) -> None:
        self._total = max(0, self._total - 1)
        self._per_user[participant] -= 1
        if self._per_user[participant] <= 0:
            del self._per_user[participant]
