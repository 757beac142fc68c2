"""2 % of video packets lost on the way in and 2 % on the way out: NACKs repair all of it."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from media import aiortc_internals as ai
from media.rtp_wire import parse_header
from media.testing import ClientPeer
from tests.integration.media.conftest import Harness, RecordingSink

FRAMES = 150  # 5 s at 30 fps


def vp8_payload_type(sdp: str) -> int:
    match = re.search(r"a=rtpmap:(\d+) VP8/90000", sdp)
    assert match, "no VP8 in the SDP"
    return int(match.group(1))


def lossy(payload_type: int, seed: int, log: list[int]) -> Callable[[bytes], bool]:
    """Drop 2 % of the video packets: one in each run of 50, at a random place in it."""
    rng = random.Random(seed)
    seen = 0
    victim = 20 + rng.randrange(50)

    def drop(packet: bytes) -> bool:
        nonlocal seen, victim
        header = parse_header(packet)
        if header.payload_type != payload_type:
            return False
        seen += 1
        if seen == victim:
            victim = (seen // 50 + 1) * 50 + rng.randrange(50)
            log.append(header.sequence_number)
            return True
        return False

    return drop


async def test_lost_video_packets_are_recovered_by_nack(
    harness: Harness, sink: RecordingSink
) -> None:
    a, b = ClientPeer("citizen", audio=False), ClientPeer("clerk", audio=False)
    await harness.join(a)
    await harness.join(b)
    await harness.settle()

    dropped_in: list[int] = []
    dropped_out: list[int] = []
    # citizen -> server: lost before the server sees them (the server must ask the citizen)
    ai.inject_rtp_loss(
        a.pc, outgoing=lossy(vp8_payload_type(a.pc.localDescription.sdp), 1, dropped_in)
    )
    # server -> clerk: lost after forwarding (the server answers from its history, via RTX)
    ai.inject_rtp_loss(
        b.pc, incoming=lossy(vp8_payload_type(b.pc.localDescription.sdp), 2, dropped_out)
    )

    await b.wait_for(
        lambda: any(len(r.numbers) >= FRAMES for r in b.received.values() if r.kind == "video"),
        within=30,
        what=f"{FRAMES} frames from the citizen",
    )
    (video,) = [r for r in b.received.values() if r.kind == "video"]
    assert len(dropped_in) >= 2 and len(dropped_out) >= 2, "the loss injection dropped too little"
    assert video.missing() == 0, f"missing frames; received {video.numbers}"
    stats = harness.call.stats()
    assert stats["nacks_answered"] >= 1, stats
    assert stats["nacks_forwarded"] >= 1, stats
    assert stats["rtx_in"] >= 1, stats
    # the recording gets the repaired packets too: the retransmissions, unwrapped
    (recorded,) = [
        sink.sequences[t.track_id]
        for t in sink.tracks.values()
        if t.kind == "video" and t.participant == "citizen"
    ]
    assert set(dropped_in) <= recorded, f"not recorded: {set(dropped_in) - recorded}"
