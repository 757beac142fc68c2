"""Two participants through the RTP forwarder: video and audio both ways, nothing decoded."""

from __future__ import annotations

from media.testing import ClientPeer
from tests.integration.media.conftest import Harness, RecordingSink

FRAMES = 60


def _video(peer: ClientPeer) -> list:
    return [r for r in peer.received.values() if r.kind == "video"]


def _audio(peer: ClientPeer) -> list:
    return [r for r in peer.received.values() if r.kind == "audio"]


async def test_two_party_video_and_audio_both_ways(harness: Harness, sink: RecordingSink) -> None:
    a, b = ClientPeer("citizen"), ClientPeer("clerk")
    await harness.join(a)
    await harness.join(b)
    assert harness.renegotiations == [("citizen", {"audio": 1, "video": 1})]
    await harness.settle()

    for peer in (a, b):
        await peer.wait_for(
            lambda p=peer: (
                any(len(r.numbers) >= FRAMES for r in _video(p))
                and any(r.audio_frames >= 50 for r in _audio(p))
            ),
            within=20,
            what="60 video frames and 1 s of audio",
        )
        (video,) = _video(peer)
        assert video.missing() == 0, video.numbers
        other = b if peer is a else a
        assert peer.receive_map[video.mid] == {
            "participant": other.name,
            "label": "camera",
            "kind": "video",
        }

    stats = harness.call.stats()
    assert stats["packets_out"] > 0
    assert stats["receive_errors"] == 0
    # SRTP is forwarded from the socket callback, not through aioice's queue and aiortc's task
    paths = harness.call.receive_paths()
    assert set(paths) == {"citizen", "clerk"}
    for hooked, queued in paths.values():
        assert hooked and queued < 8, paths
    assert stats["malformed_rtp"] == 0
    assert stats["plis_sent"] >= 1  # keyframe asked for when each receiving leg connected
    # the sink saw every track of both participants
    labels = sorted((t.participant, t.label) for t in sink.tracks.values())
    assert labels == [
        ("citizen", "audio"),
        ("citizen", "camera"),
        ("clerk", "audio"),
        ("clerk", "camera"),
    ]
    assert all(sink.packets[t] > 10 for t in sink.tracks)
