"""Two or three aiortc clients in this process, talking to a CallMedia over 127.0.0.1 only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from media.call import CallMedia
from media.ports import TrackInfo
from media.testing import ClientPeer

LOOPBACK = ["127.0.0.1"]


@dataclass
class RecordingSink:
    tracks: dict[str, TrackInfo] = field(default_factory=dict)
    packets: dict[str, int] = field(default_factory=dict)
    sequences: dict[str, set[int]] = field(default_factory=dict)  # what a recording would get
    closed: int = 0

    def on_track(self, track: TrackInfo) -> None:
        assert track.track_id not in self.tracks
        self.tracks[track.track_id] = track

    def on_rtp(self, track_id: str, packet: bytes, arrival_ns: int) -> None:
        assert track_id in self.tracks, "on_track must come before the first packet"
        self.packets[track_id] = self.packets.get(track_id, 0) + 1
        self.sequences.setdefault(track_id, set()).add(int.from_bytes(packet[2:4], "big"))

    def close(self) -> None:
        self.closed += 1


class Harness:
    def __init__(self, call: CallMedia) -> None:
        self.call = call
        self.peers: dict[str, ClientPeer] = {}
        self.renegotiations: list[tuple[str, dict[str, int]]] = []

    async def signal(self, participant: str, sdp: str, tracks: dict[str, str]) -> str:
        answer = await self.call.offer(participant, sdp, tracks)
        self.peers[participant].receive_map = self.call.receive_map(participant)
        return answer

    async def join(self, peer: ClientPeer) -> None:
        self.peers[peer.name] = peer
        peer.ensure_receivers(self.call.receive_needs(peer.name))
        await peer.negotiate(self.signal, LOOPBACK)

    async def settle(self) -> None:
        """Play the signaling layer: re-offer whoever the call asked to, until none is left."""
        for _ in range(5):
            pending = [p for p in self.peers if self.call.needs_offer(p)]
            if not pending:
                return
            for name in pending:
                peer = self.peers[name]
                peer.ensure_receivers(self.call.receive_needs(name))
                await peer.negotiate(self.signal, LOOPBACK)
        raise AssertionError("renegotiation did not settle")

    def on_renegotiate(self, participant: str, needs: dict[str, int]) -> None:
        self.renegotiations.append((participant, needs))


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
async def harness(sink: RecordingSink) -> AsyncIterator[Harness]:
    holder: list[Harness] = []
    call = CallMedia(
        "call-1",
        ice_servers=[],
        host_addresses=LOOPBACK,
        sink=sink,
        on_renegotiate=lambda p, n: holder[0].on_renegotiate(p, n),
    )
    h = Harness(call)
    holder.append(h)
    try:
        yield h
    finally:
        for peer in h.peers.values():
            await peer.close()
        await call.close()
