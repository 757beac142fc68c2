"""Counters of one call's media path.

The aiortc objects the forwarder bypasses keep no statistics of forwarded traffic, so the
forwarder counts for itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class MediaCounters:
    packets_in: int = 0  # RTP from participants (media and RTX)
    packets_out: int = 0  # RTP sent to receiving legs (forwarded and retransmitted)
    packets_dropped: int = 0  # every RTP packet not forwarded anywhere, whatever the reason
    dropped_not_connected: int = 0  # receiving leg not connected / slot not negotiated yet
    dropped_unknown_source: int = 0
    dropped_queue_full: int = 0
    malformed_rtp: int = 0
    malformed_rtcp: int = 0
    rtcp_in: int = 0
    rtcp_out: int = 0
    nacks_received: int = 0  # sequence numbers asked for by receivers
    nacks_answered: int = 0  # ... of which re-sent from the history
    nacks_forwarded: int = 0  # ... of which asked from the source
    rtx_in: int = 0
    plis_received: int = 0
    plis_sent: int = 0
    sink_errors: int = 0
    receive_errors: int = 0  # exceptions in the forwarding path (a bug; packet lost)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
