"""What the media path hands to whoever records a call.

The media package forwards RTP packets; it does not know about files. A recorder that
satisfies :class:`PacketSink` gets every packet a participant sends, decrypted, exactly as it
arrived (before any rewriting for the receiving legs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """One incoming track of one participant."""

    track_id: str  # unique within the call, e.g. "fq.h1/1" (participant / mid)
    participant: str  # username of the sender
    label: str  # "camera", "document" or "audio" (CONTRACT.md)
    kind: str  # "audio" or "video"
    codec: str  # "VP8", "H264" or "opus"
    clock_rate: int
    payload_type: int
    channels: int | None = None


class PacketSink(Protocol):
    def on_track(self, track: TrackInfo) -> None:
        """Called once per track, before its first packet."""

    def on_rtp(self, track_id: str, packet: bytes, arrival_ns: int) -> None:
        """A decrypted RTP packet (header and payload) as it arrived; must not block."""

    def close(self) -> None:
        """No more packets will come; idempotent."""
