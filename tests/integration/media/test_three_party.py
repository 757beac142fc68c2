"""A late third participant (the expert) and a second video track labelled ``document``."""

from __future__ import annotations

from media.testing import ClientPeer
from tests.integration.media.conftest import Harness, RecordingSink


def _ready(peer: ClientPeer, frames: int) -> bool:
    mids = peer.receive_map
    if not mids:
        return False
    for mid, info in mids.items():
        got = peer.received.get(mid)
        if got is None:
            return False
        if info["kind"] == "video" and len(got.numbers) < frames:
            return False
        if info["kind"] == "audio" and got.audio_frames < frames:
            return False
    return True


async def test_expert_joins_late_and_clerk_adds_document_camera(
    harness: Harness, sink: RecordingSink
) -> None:
    citizen, clerk = ClientPeer("citizen"), ClientPeer("clerk")
    await harness.join(citizen)
    await harness.join(clerk)
    await harness.settle()
    await citizen.wait_for(lambda: _ready(citizen, 10), within=15, what="clerk's media")

    expert = ClientPeer("expert")
    harness.renegotiations.clear()
    await harness.join(expert)
    assert {p for p, _ in harness.renegotiations} == {"citizen", "clerk"}
    await harness.settle()

    harness.renegotiations.clear()
    clerk.add_document_camera()
    await clerk.negotiate(harness.signal, ["127.0.0.1"])
    assert sorted(p for p, _ in harness.renegotiations) == ["citizen", "expert"]
    assert harness.renegotiations[0][1] == {"audio": 2, "video": 3}
    await harness.settle()

    expected = {
        "citizen": {
            ("clerk", "camera"),
            ("clerk", "document"),
            ("clerk", "audio"),
            ("expert", "camera"),
            ("expert", "audio"),
        },
        "clerk": {
            ("citizen", "camera"),
            ("citizen", "audio"),
            ("expert", "camera"),
            ("expert", "audio"),
        },
        "expert": {
            ("citizen", "camera"),
            ("citizen", "audio"),
            ("clerk", "camera"),
            ("clerk", "document"),
            ("clerk", "audio"),
        },
    }
    for peer in (citizen, clerk, expert):
        got = {(i["participant"], i["label"]) for i in peer.receive_map.values()}
        assert got == expected[peer.name], peer.name
        await peer.wait_for(lambda p=peer: _ready(p, 30), within=25, what="every remote track")
        for mid, info in peer.receive_map.items():
            if info["kind"] == "video":
                assert peer.received[mid].missing() == 0, (peer.name, info, harness.call.stats())

    labels = {(t.participant, t.label) for t in sink.tracks.values()}
    assert ("clerk", "document") in labels and len(labels) == 7

    # the expert leaves: the others are asked to renegotiate and their slots go quiet
    harness.renegotiations.clear()
    await harness.call.remove_participant("expert")
    assert {p for p, _ in harness.renegotiations} == {"citizen", "clerk"}
    await harness.settle()
    assert {i["participant"] for i in citizen.receive_map.values()} == {"clerk"}
